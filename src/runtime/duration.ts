// Go duration syntax, as the CRDs validate it with CEL's duration(): "720h", "1h30m", "90s", "250ms".
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDuration(text: string): number {
  const re = /([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== text.length) throw new Error(`invalid duration ${JSON.stringify(text)}: use Go syntax such as 720h, 1h30m or 90s`);
  return total;
}
