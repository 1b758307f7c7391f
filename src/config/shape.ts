/**
 * Reads key names out of a zod schema, so environment variables can be matched to keys
 * case-insensitively and "unknown key" errors can list the keys that do exist.
 */
import type { z } from 'zod';

type Def = { type: string; innerType?: z.ZodType; in?: z.ZodType; shape?: Record<string, z.ZodType>; element?: z.ZodType; options?: z.ZodType[] };

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** The schemas a value at this position may take: wrappers unwrapped, unions split. */
function variants(schema: z.ZodType): z.ZodType[] {
  const def = defOf(schema);
  switch (def.type) {
    case 'default':
    case 'prefault':
    case 'optional':
    case 'nullable':
    case 'readonly':
    case 'catch':
      return def.innerType ? variants(def.innerType) : [];
    case 'pipe':
      return def.in ? variants(def.in) : [];
    case 'union':
      return (def.options ?? []).flatMap(variants);
    default:
      return [schema];
  }
}

/** The schemas found at a key path (array indices walk into the element). */
export function schemasAt(root: z.ZodType, path: ReadonlyArray<PropertyKey>): z.ZodType[] {
  let current = variants(root);
  for (const key of path) {
    const next: z.ZodType[] = [];
    for (const schema of current) {
      const def = defOf(schema);
      // Own keys only: `in` also finds Object.prototype's (constructor, __proto__, toString), and an
      // unknown key "constructor.x" in a file made the allowed-keys lookup crash on them.
      if (def.type === 'object' && def.shape && typeof key === 'string' && Object.hasOwn(def.shape, key)) {
        next.push(...variants(def.shape[key] as z.ZodType));
      } else if (def.type === 'array' && def.element && (typeof key === 'number' || /^\d+$/.test(String(key)))) {
        next.push(...variants(def.element));
      } else if (def.type === 'record') {
        const value = (def as unknown as { valueType?: z.ZodType }).valueType;
        if (value) next.push(...variants(value));
      }
    }
    current = next;
  }
  return current;
}

/** Object keys allowed at a key path (union of all variants), or [] when none is an object. */
export function keysAt(root: z.ZodType, path: ReadonlyArray<PropertyKey>): string[] {
  const keys = new Set<string>();
  for (const schema of schemasAt(root, path)) {
    const def = defOf(schema);
    if (def.type === 'object' && def.shape) for (const k of Object.keys(def.shape)) keys.add(k);
  }
  return [...keys];
}

/** Whether the position takes an array. */
export function isArrayAt(root: z.ZodType, path: ReadonlyArray<PropertyKey>): boolean {
  return schemasAt(root, path).some((s) => defOf(s).type === 'array');
}

/** Whether the position takes a record (free-form keys). */
export function isRecordAt(root: z.ZodType, path: ReadonlyArray<PropertyKey>): boolean {
  return schemasAt(root, path).some((s) => defOf(s).type === 'record');
}
