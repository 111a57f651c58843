/**
 * LPIPS diversity as metrics/lpips.py and metrics/eval.py average it, from per-sample values.
 *
 * `calculate_lpips_given_images(group)` takes the outputs generated from one batch of inputs
 * (group[j]: the j-th output for every input of the batch) and averages LPIPS(group[i], group[j])
 * over the pairs i < j; each LPIPS(x, y) is itself a mean over the batch (the official forward's
 * `torch.mean` runs over (N, 1, H, W)). eval.py then averages those batch values per task
 * (`np.array(lpips_values).mean()`: every batch weighs the same, a smaller last batch included),
 * and the tasks' values into the mode's mean. Pure.
 */

/** The pairs (i, j), i < j, of m outputs, in the official loop order. */
export const pairsOf = (m: number): ReadonlyArray<readonly [number, number]> => {
  const out: Array<readonly [number, number]> = [];
  for (let i = 0; i < m - 1; i++) for (let j = i + 1; j < m; j++) out.push([i, j]);
  return out;
};

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * calculate_lpips_given_images from per-sample values: `perPair[p][k]` is LPIPS of pair p
 * (`pairsOf` order) for input k of the batch.
 */
export const groupLpips = (perPair: readonly (readonly number[])[]): number => mean(perPair.map(mean));

/**
 * The same from each input's own mean over the pairs (`perInput[k]`): the batch mean of those
 * (equal, since every pair covers the whole batch), so inputs can be computed one at a time and
 * grouped into the official batches afterwards.
 */
export const batchLpips = (perInput: readonly number[]): number => mean(perInput);

/** eval.py's per-task value: the mean of its batches' values, each batch weighing the same. */
export const taskLpips = (batchValues: readonly number[]): number => mean(batchValues);

/** Consecutive batches of `size` over `n` items (the last one may be smaller), as a DataLoader without drop_last. */
export const batchesOf = (n: number, size: number): ReadonlyArray<readonly [number, number]> => {
  const out: Array<readonly [number, number]> = [];
  for (let s = 0; s < n; s += size) out.push([s, Math.min(n, s + size)]);
  return out;
};
