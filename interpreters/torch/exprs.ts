/**
 * How each expression of the IR (dsl/ir.ts `Expr`) is written in PyTorch: the one owner of that,
 * shared by objective.py's phase functions (interpreters/torch/objective.ts) and models.py's
 * pipeline modules (interpreters/torch/models.ts). Each context reads the leaves its own way (a
 * phase's `data[dataset][field]` and `rand[name]`, a pipeline's arguments) and calls networks its
 * own way (`nets[...]`, `ema[...]`, or the pipeline's member modules), so those three kinds come
 * from the caller; every other kind is written here over its operands' already-emitted names.
 */
import { absurd } from '../../dsl/errors.ts';
import type { CallExpr, DataExpr, Expr } from '../../dsl/ir.ts';

/** A canonical key: equal for structurally equal expressions whatever their field order. */
export const canon = (x: unknown): string => {
  if (Array.isArray(x)) return `[${x.map(canon).join(',')}]`;
  if (x !== null && typeof x === 'object')
    return `{${Object.keys(x)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canon((x as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(x);
};

/** The kinds whose Python does not depend on the context. */
export type ValueExpr = Exclude<Expr, DataExpr | CallExpr | { readonly e: 'random' }>;

export interface ExprContext {
  /** A constant (N, width) block of the context's batch: zeros, or one-hot at `hot`. */
  readonly fill: (width: number, hot: number | null) => string;
  /** A constant the host makes (seeded draws, index blocks), placed where the context computes. */
  readonly placed: (code: string) => string;
}

/**
 * A variable-name hint and the Python of `x`, given each operand's Python (`sub`). Every function
 * named `ops.*` is in the export's ops.py.
 */
export const valueCode = (x: ValueExpr, sub: (operand: Expr) => string, ctx: ExprContext): readonly [hint: string, code: string] => {
  switch (x.e) {
    case 'detach': {
      const v = sub(x.x);
      return [`${v}_detached`, `${v}.detach()`];
    }
    case 'mix':
      return ['mix', `ops.mix(${sub(x.a)}, ${sub(x.b)}, ${sub(x.alpha)})`];
    case 'permute': {
      const v = sub(x.x);
      return [`${v}_permuted`, `ops.permute(${v}, ${sub(x.perm)})`];
    }
    case 'oneHot':
      return ['one_hot', `ops.one_hot(${sub(x.x)}, ${x.depth})`];
    case 'concat':
      return ['concat', `torch.cat([${x.parts.map(sub).join(', ')}], dim=1)`];
    case 'fill':
      return [x.hot === null ? 'zeros' : 'mask', ctx.fill(x.width, x.hot)];
    case 'slice':
      return ['sliced', `${sub(x.x)}[:, ${x.start}:${x.end}]`];
    // Pipeline expressions (dsl/pipelines.ts): a seeded draw, constant indices, batch means, a
    // per-sample choice among rows.
    case 'draw':
      return ['drawn', ctx.placed(`ops.draw_normal(${x.seed}, ${x.count}, ${x.dim})`)];
    case 'indexFill':
      return ['indices', ctx.placed(`ops.index_fill(${x.count}, ${x.value})`)];
    case 'batchMean':
      return ['batch_mean', `${sub(x.x)}.mean(0, keepdim=True)`];
    case 'choose':
      return ['chosen', `ops.choose(${sub(x.index)}, [${x.options.map(sub).join(', ')}])`];
    default:
      return absurd(x);
  }
};
