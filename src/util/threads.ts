/**
 * A process's threads as the Linux kernel sees them (TIDs under /proc/<pid>/task, this
 * process's by default), their CPU time and their priority. Nice values are per thread on Linux, so one thread of a process can
 * be favoured over the others; elsewhere these report nothing and change nothing.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** TIDs of every thread of a process now; empty where /proc is not Linux's. */
export function processThreadIds(pid: number | 'self' = 'self'): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number).filter((tid) => Number.isInteger(tid) && tid > 0);
  } catch {
    return [];
  }
}

/**
 * Nanoseconds a thread of a process has spent on a CPU and runnable but waiting for one
 * (the scheduler's own accounting, /proc/<pid>/task/<tid>/schedstat); undefined when
 * unreadable (the thread has ended, or this is not Linux).
 */
export function threadCpuTimes(tid: number, pid: number | 'self' = 'self'): { runNs: number; waitNs: number } | undefined {
  try {
    const [runNs, waitNs] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
    return runNs !== undefined && waitNs !== undefined && Number.isFinite(runNs) && Number.isFinite(waitNs) ? { runNs, waitNs } : undefined;
  } catch {
    return undefined;
  }
}

/** TID of the calling thread (the main thread's equals the process id). */
export function currentThreadId(): number | undefined {
  try {
    // "/proc/thread-self" links to "<pid>/task/<tid>".
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Raises the nice value of each thread to at least `nice` (never lowers it: that needs
 * privileges, and a thread already set lower priority by someone else keeps it).
 * Returns how many threads now run at `nice` or above. Threads that exit meanwhile are skipped.
 */
export function deprioritizeThreads(tids: Iterable<number>, nice: number): number {
  let lowered = 0;
  for (const tid of tids) {
    try {
      if (getPriority(tid) < nice) setPriority(tid, nice);
      lowered += 1;
    } catch {
      // The thread ended between listing and setting.
    }
  }
  return lowered;
}
