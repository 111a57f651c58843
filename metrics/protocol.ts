/**
 * The official evaluation protocol of StarGAN v2 (metrics/eval.py) as data: its tasks, names and
 * means. Pure.
 *
 * Domains are the sub-folders of the validation folder, sorted (`os.listdir` then `sort`); for
 * every target domain (outer loop) and every other domain as source (inner loop), the task
 * `<src>2<trg>`; its values are `LPIPS_<mode>/<task>` and `FID_<mode>/<task>`, then
 * `LPIPS_<mode>/mean` and `FID_<mode>/mean` over the tasks.
 */

export type Mode = 'latent' | 'reference';
export const MODES: readonly Mode[] = ['latent', 'reference'];

export interface Task {
  readonly name: string;
  readonly src: string;
  readonly trg: string;
  /** The target's index among the sorted domains: the generator's y. */
  readonly trgIndex: number;
}

/** eval.py's task order: target domains outer, sources inner. */
export const tasksOf = (domains: readonly string[]): readonly Task[] =>
  domains.flatMap((trg, trgIndex) => domains.filter((d) => d !== trg).map((src) => ({ name: `${src}2${trg}`, src, trg, trgIndex })));

/** `{prefix_mode/task: value, ..., prefix_mode/mean: mean}` in task order (eval.py's OrderedDict). */
export const withMean = (prefix: 'FID' | 'LPIPS', mode: Mode, values: ReadonlyArray<readonly [string, number]>): ReadonlyArray<readonly [string, number]> => {
  const rows = values.map(([task, v]) => [`${prefix}_${mode}/${task}`, v] as const);
  const mean = values.reduce((s, [, v]) => s + v / values.length, 0);
  return [...rows, [`${prefix}_${mode}/mean`, mean] as const];
};

/** eval.py's file name of a generated image: input number (1-based, over the task) and output number. */
export const generatedName = (input: number, output: number): string => `${String(input + 1).padStart(4, '0')}_${String(output + 1).padStart(2, '0')}.png`;
