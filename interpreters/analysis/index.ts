/** `starspec/analysis`: output shapes, parameter counts and multiply-accumulates per layer. */
export { describeNode, fmtInt, fmtMacs, macsOf, renderTable, summarize, type LayerRow, type NetworkSummary } from './summary.ts';
export { callCost, HEAP_OVERHEAD, largestMicroBatch, phaseCalls, renderMemory, tapeFactor, trainingMemory, WASM_HEAP_BYTES, type CallCost, type MemoryBackend, type MemoryOptions, type MicroBatchChoice, type PhaseMemory, type TapeMode } from './memory.ts';
