// Errors of the Hub client: one class, a code for programs, a sentence for people.
export type HubErrorCode =
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'REPO_NOT_FOUND'
  | 'ENTRY_NOT_FOUND'
  | 'REVISION_NOT_FOUND'
  | 'SERVER'
  | 'HTTP'
  | 'NETWORK'
  | 'TRUNCATED'
  | 'HASH_MISMATCH'
  | 'NOT_A_HUB'
  | 'OFFLINE_NOT_CACHED'
  | 'BAD_NAME';

export class HubError extends Error {
  constructor(
    readonly code: HubErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'HubError';
  }
}
