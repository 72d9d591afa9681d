/** One figure of bench:scale's `goals` map: what the issue asks, what this run got, and whether that meets it. */
export interface Goal {
  goal: string;
  got: number | null;
  met: boolean;
}

/** What a scenario module returns: its details for the report and its goals. */
export interface ScenarioResult {
  detail: Record<string, unknown>;
  goals: Record<string, Goal>;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const round1 = (n: number): number => Math.round(n * 10) / 10;
