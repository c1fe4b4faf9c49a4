import { Type, tableFromIPC, type DataType, type Field } from "apache-arrow";
import type { Row } from "./types.ts";

/** Decodes one Arrow IPC stream (as Spark sends it in an ArrowBatch or LocalRelation) into rows. */
export function rowsFromArrowIpc(data: Uint8Array): Row[] {
  if (data.byteLength === 0) return [];
  const table = tableFromIPC(data);
  const fields = table.schema.fields;
  const columns = fields.map((_, index) => table.getChildAt(index));
  const rows: Row[] = new Array<Row>(table.numRows);
  for (let i = 0; i < table.numRows; i++) {
    const row: Row = {};
    for (let j = 0; j < fields.length; j++) {
      const field = fields[j] as Field<DataType>;
      row[field.name] = toJs(columns[j]?.get(i), field.type);
    }
    rows[i] = row;
  }
  return rows;
}

/** Converts a value as apache-arrow returns it into the plain JS value described on `Row`. */
function toJs(value: unknown, type: DataType): unknown {
  if (value === null || value === undefined) return null;
  switch (type.typeId) {
    case Type.Int:
      return typeof value === "bigint" ? bigintToJs(value) : value;
    case Type.Timestamp:
    case Type.Date:
      // apache-arrow gives epoch milliseconds (fractional for microsecond units).
      return new Date(value as number);
    case Type.Decimal:
      return decimalToString(value as ArrayLike<number>, (type as DataType & { scale: number }).scale);
    case Type.List:
    case Type.LargeList:
    case Type.FixedSizeList: {
      const elementType = childType(type, 0);
      return Array.from(value as Iterable<unknown>, (element) => toJs(element, elementType));
    }
    case Type.Struct: {
      const out: Record<string, unknown> = {};
      let index = 0;
      for (const [name, fieldValue] of value as Iterable<[string, unknown]>) {
        const fieldType = childType(type, index++);
        out[name] = toJs(fieldValue, fieldType);
      }
      return out;
    }
    case Type.Map: {
      const entry = childType(type, 0);
      const keyType = childType(entry, 0);
      const valueType = childType(entry, 1);
      const stringKeys = keyType.typeId === Type.Utf8 || keyType.typeId === Type.LargeUtf8;
      const pairs = Array.from(value as Iterable<[unknown, unknown]>, ([k, v]) => [
        toJs(k, keyType),
        toJs(v, valueType),
      ]);
      return stringKeys ? Object.fromEntries(pairs) : new Map(pairs as [unknown, unknown][]);
    }
    default:
      return value;
  }
}

function childType(type: DataType, index: number): DataType {
  return (type.children as Field<DataType>[])[index]?.type ?? type;
}

function bigintToJs(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value;
}

/** Arrow decimals are little-endian two's complement in 32-bit words; the scale places the point. */
function decimalToString(words: ArrayLike<number>, scale: number): string {
  let unscaled = 0n;
  for (let i = words.length - 1; i >= 0; i--) unscaled = (unscaled << 32n) | BigInt((words[i] ?? 0) >>> 0);
  const bits = BigInt(words.length * 32);
  if (unscaled >> (bits - 1n) === 1n) unscaled -= 1n << bits;
  const negative = unscaled < 0n;
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, "0");
  const text = scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return negative ? `-${text}` : text;
}
