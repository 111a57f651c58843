/** Writing Python source: literals and identifiers (pure string functions). */

const KEYWORDS = new Set([
  'False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue', 'def', 'del', 'elif',
  'else', 'except', 'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or',
  'pass', 'raise', 'return', 'try', 'while', 'with', 'yield', 'match', 'case', 'type',
]);

/** A Python string literal (JSON's escaping is valid Python for every string). */
export const pyStr = (s: string): string => JSON.stringify(s);

/** A Python float or int literal that reads back as the same double. */
export const pyNum = (v: number): string => {
  if (Number.isNaN(v)) return "float('nan')";
  if (v === Infinity) return "float('inf')";
  if (v === -Infinity) return "-float('inf')";
  return String(v);
};

/** Any JSON-like value as a Python literal. */
export const pyLit = (v: unknown): string => {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') return pyNum(v);
  if (typeof v === 'string') return pyStr(v);
  if (Array.isArray(v)) return `[${v.map(pyLit).join(', ')}]`;
  return `{${Object.entries(v as Record<string, unknown>).map(([k, x]) => `${pyStr(k)}: ${pyLit(x)}`).join(', ')}}`;
};

/** A tuple literal (one element keeps its comma). */
export const pyTuple = (xs: readonly string[]): string => (xs.length === 1 ? `(${xs[0]},)` : `(${xs.join(', ')})`);

/** A valid, readable identifier from any text (`decode.3.norm1` -> `decode_3_norm1`). */
export const identifier = (s: string): string => {
  let id = s.replace(/[^A-Za-z0-9_]+/g, '_').replace(/^_+|_+$/g, '');
  if (id === '' || /^[0-9]/.test(id)) id = `v_${id}`;
  if (KEYWORDS.has(id)) id = `${id}_`;
  return id;
};

/** A class name from a network name (`mapping_network` -> `MappingNetwork`). */
export const className = (s: string): string => {
  const id = identifier(s)
    .split('_')
    .filter((p) => p !== '')
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join('');
  return id === '' || /^[0-9]/.test(id) ? `Net${id}` : id;
};

/** Hands out identifiers unique within one scope. */
export const namer = (reserved: Iterable<string> = []) => {
  const used = new Set<string>(reserved);
  return (hint: string): string => {
    const base = identifier(hint);
    let id = base;
    for (let i = 2; used.has(id); i++) id = `${base}_${i}`;
    used.add(id);
    return id;
  };
};

/** Indent every non-empty line by `n` levels of four spaces. */
export const indent = (lines: readonly string[], n = 1): string[] => lines.map((l) => (l === '' ? l : `${'    '.repeat(n)}${l}`));
