// In-memory drivers: the same interfaces as the PostgreSQL drivers (src/drivers/driver.ts), over a
// catalog held in memory, so the reconcilers' decisions can be tested without a server. They add to
// the real-server tests in test/integration; they replace none. Each keeps what it was asked to do.
import { isDeepStrictEqual } from 'node:util';
import type { AuditRecord } from '../../src/audit/record.ts';
import type { AuditScope, AuditSink, ScopedInput } from '../../src/audit/sink.ts';
import { StaleObservation } from '../../src/runtime/controller.ts';
import { EMPTY_STATE, type GrantState } from '../../src/governance/grants.ts';
import { isNoop, planRevoke, type AccessObservation, type AccessPlan, type AccessTarget } from '../../src/governance/access-plan.ts';
import type { GranteeFacts } from '../../src/governance/reserved.ts';
import type { Applied } from '../../src/drivers/driver.ts';
import type { AccessDriver } from '../../src/drivers/postgres/access-driver.ts';
import {
  viewComment,
  type ViewApplied,
  type ViewChange,
  type ViewDriver,
  type ViewObservation,
  type ViewTarget,
} from '../../src/drivers/postgres/view-driver.ts';
import type { ViewFacts } from '../../src/drivers/postgres/view-catalog.ts';

export class KeptRecords implements AuditSink {
  readonly records: AuditRecord[] = [];
  async write(r: AuditRecord): Promise<void> {
    this.records.push(r);
  }
}

/** A role as the in-memory catalog has it. */
export interface MemoryRole {
  comment: string | null;
  state: GrantState;
  dangerousAttributes: string[];
}

export function grantee(name: string, facts: Partial<GranteeFacts> = {}): GranteeFacts {
  return { name, oid: 20_000 + name.length, superuser: false, bypassRls: false, createRole: false, comment: null, isSteward: false, ...facts };
}

/** Group roles, usage roles, one schema's tables and the principals that exist. */
export class MemoryAccessDriver implements AccessDriver {
  readonly roles = new Map<string, MemoryRole>();
  readonly usage = new Map<string, { comment: string | null; hasUsage: boolean }>();
  readonly principals = new Map<string, GranteeFacts>();
  schemaExists = true;
  tables: { name: string; owner: string }[] = [{ name: 'orders', owner: 'app' }];
  /** Every plan apply was given that changed something, in order. */
  readonly changes: AccessPlan[] = [];
  /** Runs between observe and apply's look under the locks: another writer. */
  beforeApply?: () => void;

  async observe(t: AccessTarget): Promise<AccessObservation> {
    const role = this.roles.get(t.groupRole);
    const usage = this.usage.get(t.usageRole);
    const principal = t.principal ? this.principals.get(t.principal) : undefined;
    return structuredClone({
      role: { exists: !!role, comment: role?.comment ?? null, dangerousAttributes: role?.dangerousAttributes ?? [] },
      usageRole: { exists: !!usage, comment: usage?.comment ?? null, hasUsage: usage?.hasUsage ?? false },
      state: role?.state ?? EMPTY_STATE,
      schemaExists: this.schemaExists,
      tables: this.tables,
      principalExists: !!principal,
      ...(principal ? { principal } : {}),
    });
  }

  async apply(t: AccessTarget, basis: AccessObservation, plan: AccessPlan, audit: AuditScope, notes: ScopedInput[] = []): Promise<Applied> {
    if (isNoop(plan)) {
      await audit.recordMany(notes);
      return { ran: [] };
    }
    this.beforeApply?.();
    if (!isDeepStrictEqual(await this.observe(t), basis)) throw new StaleObservation(`${t.groupRole} changed`);
    this.changes.push(plan);
    if (plan.kind === 'revoke') {
      this.roles.delete(t.groupRole);
    } else {
      this.roles.set(t.groupRole, { comment: t.comment, state: structuredClone(plan.expect), dangerousAttributes: [] });
      this.usage.set(t.usageRole, { comment: t.usageRoleComment, hasUsage: true });
    }
    const ran = [`${plan.kind} ${t.groupRole}`];
    await audit.recordMany([...notes, { action: plan.kind === 'revoke' ? 'role.drop' : 'grant', resource: `memory/role:${t.groupRole}`, outcome: 'success' }]);
    return { ran };
  }

  async remove(t: AccessTarget, audit: AuditScope, notes: ScopedInput[] = []): Promise<Applied> {
    const basis = await this.observe(t);
    return this.apply(t, basis, planRevoke(basis, t), audit, notes);
  }
}

/** One view, its roles and its sources, as the in-memory catalog has them. */
export class MemoryViewDriver implements ViewDriver {
  readonly roles = new Map<string, GranteeFacts>();
  view: ViewFacts = { exists: false, comment: null };
  missingSources: string[] = [];
  schemaProblems: string[] = [];
  exposure: { role: string; table: string }[] = [];
  uniqueKeys: Record<string, string[][]> = {};
  readers: string[] = [];
  readonly changes: ViewChange[] = [];
  removed = 0;

  async observe(t: ViewTarget): Promise<ViewObservation> {
    const present = [...t.readers, ...t.unmaskedRoles].filter((r) => this.roles.has(r));
    const readerRole = this.view.exists
      ? {
          exists: true,
          comment: t.readerComment,
          dangerousAttributes: [],
        }
      : { exists: false, comment: null, dangerousAttributes: [] };
    return structuredClone({
      missingSources: this.missingSources,
      roles: Object.fromEntries(present.map((r) => [r, this.roles.get(r)!])),
      uniqueKeys: this.uniqueKeys,
      schemaProblems: this.schemaProblems,
      hmacFunction: '"public"."hmac"',
      view: this.view,
      exposure: this.exposure,
      readerRole: {
        role: readerRole,
        usageRole: { exists: false, comment: null, hasUsage: false },
        state: {
          tablePrivileges: [{ schema: t.schema, table: t.name, privilege: 'SELECT' }],
          schemaUsage: [t.schema],
          defaultPrivileges: [],
          members: this.readers,
          memberOf: [],
        },
        schemaExists: true,
        tables: [],
        principalExists: false,
      },
      directGrantees: [],
    });
  }

  async apply(t: ViewTarget, basis: ViewObservation, change: ViewChange, audit: AuditScope, notes: ScopedInput[] = []): Promise<ViewApplied> {
    if (!isDeepStrictEqual(await this.observe(t), basis)) throw new StaleObservation(`${t.schema}.${t.name} changed`);
    const readersChanged = !isDeepStrictEqual(this.readers, change.readers);
    if (change.build || readersChanged) this.changes.push(structuredClone(change));
    if (change.build) {
      this.view = {
        exists: true,
        comment: viewComment(t, change.sha, 'd0'),
        relkind: 'v',
        owner: t.owner,
        securityBarrier: true,
        definitionSha: 'd0',
      };
    }
    this.readers = [...change.readers];
    await audit.recordMany([
      ...notes,
      ...(change.build ? [{ action: 'view.replace', resource: `memory/${t.schema}.${t.name}`, outcome: 'success' as const }] : []),
    ]);
    return { ran: change.build ? ['build'] : [], built: !!change.build, heldElsewhere: [], dropped: [] };
  }

  async remove(_t: ViewTarget, audit: AuditScope, notes: ScopedInput[] = [], onlyIfDropped = false): Promise<ViewApplied> {
    const dropped = this.view.exists ? ['view'] : [];
    this.view = { exists: false, comment: null };
    this.readers = [];
    if (dropped.length) this.removed++;
    if (dropped.length || !onlyIfDropped) await audit.recordMany(notes);
    return { ran: dropped.map(() => 'DROP VIEW'), built: false, heldElsewhere: [], dropped };
  }
}
