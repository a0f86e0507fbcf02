package engine

// Memory is how an engine's memory is sized from the plan's figures
// (package plan does the arithmetic; the flags and quirks are here).
type Memory struct {
	// Overhead is what the engine needs beyond weights and KV cache
	// (CUDA context, activations, graphs), for estimates;
	// engines.<name>.overhead overrides it.
	Overhead int64
	// Fraction is the flag taking the engine's share of the GPU memory
	// ("" none), given the reservation's share of the total.
	Fraction string
	// FractionOfFree: the fraction is of the memory left after the
	// weights (TensorRT-LLM's KV cache fraction), not of the total.
	FractionOfFree bool
	// UnifiedCap caps the fraction on unified memory, where the engine
	// checks at start that its share of the total is free and CUDA's free
	// memory tops out below the total (0: no cap, no start check).
	UnifiedCap float64
	// KVBytes is the flag taking the KV cache's exact size in bytes (""
	// none); KVBytesIn says whether the engine in an image takes it, and
	// why not ("" image: a native engine, taken to be current).
	KVBytes   string
	KVBytesIn func(image string) (ok bool, why string)
	// TokenPool is the flag taking the KV cache's size in tokens
	// (context × concurrency; "" none).
	TokenPool string
	// UnifiedEnv is environment (KEY=VALUE) that helps the engine on
	// unified memory; a value the model sets wins.
	UnifiedEnv []string
}

// pytorchUnifiedEnv helps every PyTorch engine on unified memory:
// PyTorch's expandable segments give back 6–7 GiB of the 17–19 GiB a vLLM
// loses right after the weights load on a Spark
// (nvidia/GLM-5.3-Flash-FP4-Local discussion #7).
var pytorchUnifiedEnv = []string{"PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"}
