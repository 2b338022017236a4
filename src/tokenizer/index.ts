export * from "./byte-level.js";
export * from "./pretokenize.js";
export * from "./bpe-trainer.js";
export * from "./tokenizer-json.js";
export * from "./tokenizer.js";
