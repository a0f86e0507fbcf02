package engine

// Checkpoint is what the planner read of a model's files, as an engine's
// rules need it.
type Checkpoint struct {
	// Format is "safetensors" or "gguf"; Kind "generation" or "embedding".
	Format, Kind string
	// Quant is the quantization as people read it ("modelopt NVFP4");
	// QuantMethod ("modelopt", "compressed-tensors", "fp8"), QuantAlgo
	// ("NVFP4", "MXFP4") and QuantBits its parts.
	Quant, QuantMethod, QuantAlgo string
	QuantBits                     int
}

// GPU is one GPU of the box, as an engine's rules need it.
type GPU struct {
	Name string
	SM   int // compute capability as a number: 121 for 12.1
}

// Finding is what a CheckpointRule says of a model: a known-bad engine ×
// checkpoint × box combination, or something gantry fixes for it.
type Finding struct {
	// Level is "error" (blocks the start), "warning" or "fixed".
	Level       string
	Reason, Fix string
	// AddArgs are flags gantry adds to the engine's command (a "fixed").
	AddArgs []string
}

// CheckpointRule is one of an engine's own engine × checkpoint × box
// rules, from the seed's "Reality Check" sections and the engines' issue
// trackers. Check returns nil when the rule does not apply to the model
// named name with args on the checkpoint c and the box's gpus.
type CheckpointRule struct {
	Name  string
	Check func(name string, args []string, c Checkpoint, gpus []GPU) *Finding
}

func isFP4(algo string) bool { return algo == "NVFP4" || algo == "MXFP4" }
