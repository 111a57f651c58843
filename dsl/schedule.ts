/** Constructors and evaluation of step schedules (pure data in, number out). */
import type { Schedule } from './ir.ts';

export const constant = (value: number): Schedule => ({ kind: 'constant', value });

export const piecewiseLinear = (points: ReadonlyArray<readonly [number, number]>, every = 1): Schedule => ({
  kind: 'piecewiseLinear',
  points,
  every,
});

/** Hold `value` until `start`, then decay linearly to `end` at `stop`, updated every `every` steps. */
export const linearDecay = (value: number, start: number, stop: number, end = 0, every = 1): Schedule =>
  piecewiseLinear(
    [
      [start, value],
      [stop, end],
    ],
    every,
  );

export const scheduleAt = (s: Schedule, step: number): number => {
  switch (s.kind) {
    case 'constant':
      return s.value;
    case 'piecewiseLinear': {
      const at = Math.floor(step / s.every) * s.every;
      const pts = s.points;
      if (pts.length === 0) return 0;
      if (at <= pts[0]![0]) return pts[0]![1];
      for (let i = 1; i < pts.length; i++) {
        const [x0, y0] = pts[i - 1]!;
        const [x1, y1] = pts[i]!;
        if (at <= x1) return x1 === x0 ? y1 : y0 + ((y1 - y0) * (at - x0)) / (x1 - x0);
      }
      return pts[pts.length - 1]![1];
    }
  }
};
