/** Camera entries under `cameras:` in the config. The capture folder owns this schema. */
import { z } from 'zod';

const cameraName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'expected [a-zA-Z0-9_-], used in MQTT topics');

export const FolderCameraSchema = z.strictObject({
  type: z.literal('folder'),
  name: cameraName,
  /** Folder of JPEG/PNG images, replayed in name order. */
  path: z.string().min(1),
  fps: z.number().positive().max(120).default(2),
  loop: z.boolean().default(true),
});

export const CameraConfigSchema = z.discriminatedUnion('type', [FolderCameraSchema]);
export type CameraConfig = z.infer<typeof CameraConfigSchema>;
