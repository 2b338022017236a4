/**
 * Language-model backbone on the compute core: a Llama / Qwen2-family decoder, KV cache, LoRA
 * adapters in PEFT's layout, and Hugging Face folder load/save. See docs/backbone.md.
 */
export * from './decoder.js';
export * from './kv-cache.js';
export * from './lora.js';
export * from './checkpoint-folder.js';
export * from './batch.js';
export * from './score.js';
export * from './trie.js';
