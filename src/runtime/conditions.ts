// Kubernetes conditions, kept the way kstatus and `kubectl wait` read them: lastTransitionTime
// moves only when a condition's status changes, and every condition carries observedGeneration.
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** Returns a new list with `input` applied; the order of existing conditions is kept. */
export function setCondition(conditions: readonly Condition[], input: ConditionInput, generation: number | undefined, now: Date): Condition[] {
  const existing = conditions.find((c) => c.type === input.type);
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: truncate(input.message, 32_000),
    lastTransitionTime: existing && existing.status === input.status ? existing.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  return existing ? conditions.map((c) => (c.type === input.type ? next : c)) : [...conditions, next];
}

export function setConditions(conditions: readonly Condition[], inputs: readonly ConditionInput[], generation: number | undefined, now: Date): Condition[] {
  return inputs.reduce<Condition[]>((list, input) => setCondition(list, input, generation, now), [...conditions]);
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
