/**
 * Reports the values a delivery carried malformed (SPEC §4: "left out and logged once"). Mapping names
 * each in `warnings` as "<property>: <what was wrong, quoting the value>"; the log gets the topic, the
 * property and the kind of problem — never the value, which may be personal — once per topic, property
 * and kind for the life of the process, so a shop that always sends one odd field does not flood the log.
 */
export interface WarningLog {
  warn(obj: object, msg: string): void;
}

export type MappingProblem = "malformed_amount" | "malformed_date" | "missing_amount" | "unusable_value";

export interface MappingWarning {
  readonly property: string;
  readonly problem: MappingProblem;
}

/** Reads one of mapping's warning texts into fields without its value. */
export function parseMappingWarning(text: string): MappingWarning {
  const colon = text.indexOf(":");
  const property = colon > 0 ? text.slice(0, colon).trim() : "unknown";
  const detail = colon > 0 ? text.slice(colon + 1) : text;
  const problem: MappingProblem = /malformed amount/.test(detail)
    ? "malformed_amount"
    : /malformed date/.test(detail)
      ? "malformed_date"
      : /has no amount/.test(detail)
        ? "missing_amount"
        : "unusable_value";
  return { property, problem };
}

/** A reporter that logs each (topic, property, problem) the first time it is seen. */
export function createMappingWarningReporter(
  log: WarningLog,
): (topic: string, warnings: readonly string[] | undefined) => void {
  const reported = new Set<string>();
  return (topic, warnings) => {
    for (const text of warnings ?? []) {
      const { property, problem } = parseMappingWarning(text);
      const key = `${topic}\u0000${property}\u0000${problem}`;
      if (reported.has(key)) continue;
      reported.add(key);
      log.warn({ topic, property, problem }, "delivery value left out");
    }
  };
}
