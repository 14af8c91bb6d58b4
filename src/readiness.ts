/**
 * What /readyz answers: computed by the service (service/health.ts), served by http/health.ts. It lives
 * below both so neither imports the other.
 */
export interface Readiness {
  readonly ready: boolean;
  readonly reasons: readonly string[];
  /** Working, but not fully (e.g. contacts cannot be linked); never a reason for 503. */
  readonly degraded?: readonly string[];
}
