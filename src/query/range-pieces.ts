import { DAY, HOUR, MINUTE } from '../store/levels.ts';

/** A stretch of time served by one rollup level: buckets of `level` with start in [from, to). */
export interface Piece {
  level: number;
  from: number;
  to: number;
  /** Which output bucket the piece belongs to. */
  index: number;
}

/**
 * Covers [from, to) (minute-aligned epoch ms) with as few rollup buckets as possible: whole
 * UTC days from the day level, whole hours from the hour level, the rest from minutes. Exact,
 * because every level holds the same events; only the number of rows read changes.
 */
export function piecesFor(from: number, to: number, index: number): Piece[] {
  const pieces: Piece[] = [];
  const firstDay = ceilTo(from, DAY.ms);
  const lastDay = floorTo(to, DAY.ms);
  if (firstDay < lastDay) {
    pushHoursAndMinutes(pieces, from, firstDay, index);
    pieces.push({ level: DAY.level, from: firstDay, to: lastDay, index });
    pushHoursAndMinutes(pieces, lastDay, to, index);
  } else {
    pushHoursAndMinutes(pieces, from, to, index);
  }
  return pieces;
}

function pushHoursAndMinutes(pieces: Piece[], from: number, to: number, index: number): void {
  if (from >= to) return;
  const firstHour = ceilTo(from, HOUR.ms);
  const lastHour = floorTo(to, HOUR.ms);
  if (firstHour < lastHour) {
    if (from < firstHour) pieces.push({ level: MINUTE.level, from, to: firstHour, index });
    pieces.push({ level: HOUR.level, from: firstHour, to: lastHour, index });
    if (lastHour < to) pieces.push({ level: MINUTE.level, from: lastHour, to, index });
  } else {
    pieces.push({ level: MINUTE.level, from, to, index });
  }
}

function floorTo(t: number, ms: number): number {
  return Math.floor(t / ms) * ms;
}

function ceilTo(t: number, ms: number): number {
  return Math.ceil(t / ms) * ms;
}
