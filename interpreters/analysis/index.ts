/** `starspec/analysis`: output shapes, parameter counts and multiply-accumulates per layer. */
export { describeNode, fmtInt, fmtMacs, macsOf, renderTable, summarize, type LayerRow, type NetworkSummary } from './summary.ts';
