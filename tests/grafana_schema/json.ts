// Types of dashboard JSON as Grafana stores it, from @grafana/schema's TypeScript types.
//
// The schema's string enums (FieldColorModeId, MappingType, ThresholdsMode, ...) are nominal in TypeScript: a JSON
// string such as "thresholds" is not assignable to them. Json<T> replaces every string enum by the union of its
// values, and lets a DataQuery (a panel's or an annotation's target) carry its datasource's own keys, as the schema
// documents ("specific implementations will extend this interface"). Everything else is checked as the schema says:
// unknown keys, wrong value types and missing required keys are errors.
import type { DataQuery } from '@grafana/schema';

export type Json<T> = T extends string
  ? `${T}`
  : T extends ReadonlyArray<infer Item>
    ? Array<Json<Item>>
    : T extends DataQuery
      ? { [K in keyof T]: Json<T[K]> } & { [key: string]: unknown }
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;
