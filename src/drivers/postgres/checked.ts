// Running GRANT/REVOKE so that Steward never reports one that did not happen. PostgreSQL refuses a
// GRANT when the current user holds none of the privilege (42501), but when it holds some of it
// without the grant option it only warns ("no privileges were granted", 01007; "not all privileges
// could be revoked", 01006) and carries on. A statement sent checked (Session.send, Session.check in
// session.ts) turns both into the InsufficientPrivilege error here, which rolls the transaction back
// and ends in a condition that names the object.

export const NOT_GRANTED = '01007';
export const NOT_REVOKED = '01006';
const INSUFFICIENT_PRIVILEGE = '42501';

export class InsufficientPrivilege extends Error {
  readonly object: string;
  constructor(object: string, detail: string) {
    super(`Steward's database login may not change ${object}: ${detail}`);
    this.name = 'InsufficientPrivilege';
    this.object = object;
  }
}

/** PostgreSQL's refusal for want of privilege (42501) as InsufficientPrivilege on `object`; any other error as it is. */
export function asInsufficientPrivilege(err: unknown, object: string): unknown {
  return (err as { code?: string }).code === INSUFFICIENT_PRIVILEGE ? new InsufficientPrivilege(object, (err as Error).message) : err;
}
