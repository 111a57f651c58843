/** `starspec summary <spec> --settings`: every setting of a spec with its type, default and doc. */
import type { SettingInfo } from '../api/spec.ts';
import type { SettingType } from '../dsl/settings.ts';

/** A setting's type in a few characters: `int >= 1`, `number 0..1`, `CelebA|RaFD|Both`, `list`. */
export const showType = (ty: SettingType): string => {
  const range = (min?: number, max?: number): string =>
    min !== undefined && max !== undefined ? ` ${min}..${max}` : min !== undefined ? ` >= ${min}` : max !== undefined ? ` <= ${max}` : '';
  switch (ty.kind) {
    case 'int':
      return `int${range(ty.min, ty.max)}`;
    case 'number':
      return `number${range(ty.min, ty.max)}`;
    case 'bool':
      return 'bool';
    case 'enum':
      return ty.values.join('|');
    case 'list':
      return ty.values === undefined ? 'list' : ty.values.length <= 4 ? `list of ${ty.values.join('|')}` : `list (of ${ty.values.length} names)`;
  }
};

const showValue = (v: SettingInfo['default']): string => (Array.isArray(v) ? v.join(',') : String(v));

export const renderSettings = (info: { readonly name: string; readonly doc: string; readonly settings: readonly SettingInfo[] }): string => {
  const rows = info.settings.map((s) => [s.key, showType(s.type), `${showValue(s.default)}${s.derived ? ' (derived)' : ''}`, s.doc] as const);
  const head = ['setting', 'type', 'default', 'doc'] as const;
  const width = (i: 0 | 1 | 2): number => Math.max(head[i].length, ...rows.map((r) => Math.min(r[i].length, 40)));
  const line = (r: readonly [string, string, string, string]): string =>
    `${r[0].padEnd(width(0))}  ${r[1].padEnd(width(1))}  ${r[2].padEnd(width(2))}  ${r[3]}`.trimEnd();
  const body = rows.length === 0 ? '(no settings)' : [line(head), ...rows.map(line)].join('\n');
  return `${info.name}: ${info.doc}\n\n${body}\n`;
};
