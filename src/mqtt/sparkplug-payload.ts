/**
 * The Sparkplug B payload (eclipse-sparkplug spec 3.0, sparkplug_b.proto) encoded and decoded
 * by hand: only the fields an edge node needs (timestamp, metrics, seq; a metric's name,
 * timestamp, datatype, is_null and scalar value). It is small enough that a protobuf
 * runtime would be the larger dependency; tests check it against an independent decoder.
 */

/** Sparkplug B datatype codes (spec 3.0 §6.4.16). */
export const DataType = {
  Int32: 3,
  Int64: 4,
  UInt32: 7,
  UInt64: 8,
  Float: 9,
  Double: 10,
  Boolean: 11,
  String: 12,
  DateTime: 13,
} as const;
export type DataTypeName = keyof typeof DataType;

export interface Metric {
  name: string;
  type: DataTypeName;
  /** null sends is_null (value unknown, e.g. no score yet). */
  value: number | bigint | boolean | string | null;
  timestamp?: number;
}

export interface Payload {
  timestamp: number;
  metrics: Metric[];
  /** Absent only in NDEATH. */
  seq?: number;
}

// ---- encoding -------------------------------------------------------------------------

function varint(value: bigint): Buffer {
  if (value < 0n) value = BigInt.asUintN(64, value);
  const bytes: number[] = [];
  do {
    let b = Number(value & 0x7fn);
    value >>= 7n;
    if (value > 0n) b |= 0x80;
    bytes.push(b);
  } while (value > 0n);
  return Buffer.from(bytes);
}

const key = (field: number, wire: 0 | 1 | 2 | 5): Buffer => varint(BigInt((field << 3) | wire));
const uintField = (field: number, v: number | bigint | boolean): Buffer =>
  Buffer.concat([key(field, 0), varint(typeof v === 'boolean' ? (v ? 1n : 0n) : BigInt(v))]);
const bytesField = (field: number, v: Buffer): Buffer => Buffer.concat([key(field, 2), varint(BigInt(v.length)), v]);

function encodeMetric(m: Metric): Buffer {
  const parts = [bytesField(1, Buffer.from(m.name, 'utf8'))];
  if (m.timestamp !== undefined) parts.push(uintField(3, m.timestamp));
  parts.push(uintField(4, DataType[m.type]));
  if (m.value === null) {
    parts.push(uintField(7, true));
    return Buffer.concat(parts);
  }
  const v = m.value;
  switch (m.type) {
    case 'Int32':
      // int_value is a proto uint32: negative Int32 values travel as their two's complement.
      parts.push(uintField(10, BigInt.asUintN(32, BigInt(v))));
      break;
    // UInt32 is carried by long_value, as Tahu reads it: in int_value a Tahu host saw null.
    case 'UInt32':
    case 'Int64':
    case 'UInt64':
    case 'DateTime':
      parts.push(uintField(11, BigInt.asUintN(64, BigInt(v))));
      break;
    case 'Float': {
      const b = Buffer.alloc(4);
      b.writeFloatLE(v as number);
      parts.push(key(12, 5), b);
      break;
    }
    case 'Double': {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(v as number);
      parts.push(key(13, 1), b);
      break;
    }
    case 'Boolean':
      parts.push(uintField(14, v as boolean));
      break;
    case 'String':
      parts.push(bytesField(15, Buffer.from(v as string, 'utf8')));
      break;
  }
  return Buffer.concat(parts);
}

export function encodePayload(p: Payload): Buffer {
  const parts = [uintField(1, p.timestamp)];
  for (const m of p.metrics) parts.push(bytesField(2, encodeMetric(m)));
  if (p.seq !== undefined) parts.push(uintField(3, p.seq));
  return Buffer.concat(parts);
}

// ---- decoding -------------------------------------------------------------------------

interface Field {
  field: number;
  wire: number;
  int?: bigint;
  bytes?: Buffer;
}

function* fields(buf: Buffer): Generator<Field> {
  let pos = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('Sparkplug payload: truncated varint');
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 63n) throw new Error('Sparkplug payload: varint too long');
    }
  };
  const take = (n: number): Buffer => {
    if (pos + n > buf.length) throw new Error('Sparkplug payload: truncated field');
    const out = buf.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  while (pos < buf.length) {
    const k = Number(readVarint());
    const field = k >>> 3;
    const wire = k & 7;
    if (wire === 0) yield { field, wire, int: readVarint() };
    else if (wire === 1) yield { field, wire, bytes: take(8) };
    else if (wire === 2) yield { field, wire, bytes: take(Number(readVarint())) };
    else if (wire === 5) yield { field, wire, bytes: take(4) };
    else throw new Error(`Sparkplug payload: unsupported wire type ${wire}`);
  }
}

const typeNames = new Map<number, DataTypeName>(Object.entries(DataType).map(([n, c]) => [c, n as DataTypeName]));

function toNumber(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function decodeMetric(buf: Buffer): Metric | undefined {
  let name = '';
  let type: DataTypeName | undefined;
  let value: Metric['value'] = null;
  let timestamp: number | undefined;
  for (const f of fields(buf)) {
    if (f.field === 1 && f.bytes) name = f.bytes.toString('utf8');
    else if (f.field === 3 && f.int !== undefined) timestamp = Number(f.int);
    else if (f.field === 4 && f.int !== undefined) type = typeNames.get(Number(f.int));
    else if (f.field === 10 && f.int !== undefined) value = Number(f.int);
    else if (f.field === 11 && f.int !== undefined) value = toNumber(f.int);
    else if (f.field === 12 && f.bytes) value = f.bytes.readFloatLE(0);
    else if (f.field === 13 && f.bytes) value = f.bytes.readDoubleLE(0);
    else if (f.field === 14 && f.int !== undefined) value = f.int !== 0n;
    else if (f.field === 15 && f.bytes) value = f.bytes.toString('utf8');
  }
  // Metrics of types this node does not use (DataSet, Template, ...) are skipped, not guessed at.
  if (type === undefined) return undefined;
  if (type === 'Int32' && typeof value === 'number') value = value | 0;
  return timestamp === undefined ? { name, type, value } : { name, type, value, timestamp };
}

/** Decodes a payload; throws a clear error on a malformed buffer. */
export function decodePayload(buf: Buffer): Payload {
  const out: Payload = { timestamp: 0, metrics: [] };
  for (const f of fields(buf)) {
    if (f.field === 1 && f.int !== undefined) out.timestamp = Number(f.int);
    else if (f.field === 2 && f.bytes) {
      const m = decodeMetric(f.bytes);
      if (m) out.metrics.push(m);
    } else if (f.field === 3 && f.int !== undefined) out.seq = Number(f.int);
  }
  return out;
}
