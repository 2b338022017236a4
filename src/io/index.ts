export * from "./atomic.js";
export * from "./dtype.js";
export * from "./safetensors.js";
export * from "./hf-config.js";
export * from "./hf-folder.js";
export * from "./json.js";
