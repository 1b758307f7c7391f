/**
 * Config text that reaches the operating system: a file path, or an argument of a child
 * process. Neither open() nor exec() can carry a NUL byte, so one in the config could only
 * fail later, at every spawn or at start-up with a less helpful error; it is refused at
 * validation instead, where the message names the field.
 */
import { z } from 'zod';

const NO_NUL = 'expected no NUL character (a process argument or file path cannot hold one)';

export const osText = z.string().min(1).regex(/^[^\0]*$/, NO_NUL);
