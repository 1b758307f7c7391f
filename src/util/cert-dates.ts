/**
 * A TLS certificate is valid between two dates, judged by this device's wall clock. Boards
 * without a battery-backed RTC boot at 1970 or at their last saved time until NTP sets the
 * clock, so "not valid yet" (or "expired", after a clock set far ahead) is then the clock's
 * fault, not the certificate's: the error shows what the clock reads, so that an operator
 * can tell which.
 */

/**
 * The error to report when TLS refused `server`'s certificate for its dates (Node's codes
 * CERT_NOT_YET_VALID and CERT_HAS_EXPIRED, for the certificate or one of its chain); undefined
 * for any other code. `server` names whose it is: "the broker", "the update server".
 */
export function certificateDateError(code: unknown, server: string): string | undefined {
  const clock = new Date().toISOString();
  if (code === 'CERT_NOT_YET_VALID') {
    return `${server}'s certificate (or its CA's) is not valid yet by this device's clock, which reads ${clock}; the clock is likely behind (no battery-backed clock, NTP not synchronised yet): set it (timedatectl, NTP)`;
  }
  if (code === 'CERT_HAS_EXPIRED') {
    return `${server}'s certificate (or its CA's) has expired by this device's clock, which reads ${clock}; renew it on ${server}, or, if that date is wrong, set the clock (timedatectl, NTP)`;
  }
  return undefined;
}
