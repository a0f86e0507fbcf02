// Package status holds the data types of gantry's admin API — a model's
// state, the whole picture /api/status returns, the events /api/events
// streams — so that a client (the CLI talking to a remote gantry) can read
// them without linking the scheduler that produces them.
package status

import (
	"time"

	"github.com/gantryhq/gantry/internal/gpu"
)

// State is where a model's engine is in its life.
type State string

// The states; supervise.Process documents the transitions.
const (
	Stopped  State = "stopped"
	Starting State = "starting"
	Ready    State = "ready"
	Stopping State = "stopping"
	Failed   State = "failed"
)

// Finding is one rule the planner applied to a model: a known-bad engine ×
// checkpoint × box combination, or something gantry fixed for it.
type Finding struct {
	Level  string `json:"level"` // error (blocks the start), warning, fixed
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
	Fix    string `json:"fix"`
}

// Door is one address a client reaches a model at.
type Door struct {
	// Kind is model (models.<name>.listen: every request goes to the
	// model), slot (slots.<slot>.listen: the model's name switches the
	// slot to it), gateway (listen: by the model's name) or ollama
	// (ollama_api.listen, Ollama's API, by the model's name).
	Kind string `json:"kind"`
	// Address is the listen address as configured (0.0.0.0 included).
	Address string `json:"address"`
	// URL is the base URL a client sets: …/v1 for the OpenAI API, the
	// bare address for Ollama's; a wildcard address is named by the
	// machine's host name.
	URL string `json:"url"`
	// Model is the name a request there sends; "" on the model's own
	// address, where any name (or none) reaches it.
	Model string `json:"model,omitempty"`
}

// String is the door as the CLI shows it: the URL, and the model name a
// request sends when it needs one.
func (d Door) String() string {
	if d.Model == "" {
		return d.URL
	}
	return d.URL + " (model " + d.Model + ")"
}

// ModelStatus is one model's state, as /api/status and `gantry ps` show it.
type ModelStatus struct {
	Name        string     `json:"name"`
	Engine      string     `json:"engine"`
	State       State      `json:"state"`
	Reason      string     `json:"reason,omitempty"`
	Phase       string     `json:"phase,omitempty"`
	Detail      string     `json:"detail,omitempty"`
	Port        int        `json:"port"`
	PID         int        `json:"pid"`
	Starts      int        `json:"starts"`
	MemoryBytes int64      `json:"memory_bytes"`
	Inflight    int        `json:"inflight"`
	Queued      int        `json:"queued"`
	LastUsed    *time.Time `json:"last_used"`
	Diagnosis   string     `json:"diagnosis"`
	Mode        string     `json:"mode"`
	AlwaysOn    bool       `json:"always_on"`
	Slot        string     `json:"slot,omitempty"`
	Aliases     []string   `json:"aliases,omitempty"`
	Fallback    string     `json:"fallback,omitempty"`
	Runtime     string     `json:"runtime"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	ReadyAt     *time.Time `json:"ready_at,omitempty"`
	LastLogLine string     `json:"last_log_line,omitempty"`
	// Adopted is true for an engine a previous gantry started.
	Adopted bool `json:"adopted,omitempty"`
	// MemorySource says where memory_bytes comes from (config or estimate).
	MemorySource string    `json:"memory_source"`
	Findings     []Finding `json:"findings,omitempty"`
	// Invalid is why the model cannot start as configured (what `config
	// validate` reports for it: a path that does not exist, no memory
	// reservation, a blocking rule); "" when it can. Its state stays
	// stopped (or failed once a start was refused).
	Invalid string `json:"invalid,omitempty"`
	// What the model's files say (gantry's inventory of them), empty when
	// it has not read any (no path:, command and sim engines): the
	// architecture as config.json's model_type (or the GGUF's) names it,
	// the parameter count and the quantization; Context is the context
	// length the engine is given (0: the engine's default).
	ModelType    string `json:"model_type,omitempty"`
	Params       int64  `json:"params,omitempty"`
	Quantization string `json:"quantization,omitempty"`
	Context      int64  `json:"context,omitempty"`
	// Doors are the addresses clients reach the model at — never the
	// engine's internal port: the gateway (by name), the model's own
	// listen, its slot's, Ollama's API. The first is the most direct.
	Doors []Door `json:"doors,omitempty"`
	// Progress is how far the load has come, while the model starts.
	Progress *Progress `json:"progress,omitempty"`
	// The engine's memory flags gantry passes: the fraction (vLLM's
	// --gpu-memory-utilization, SGLang's --mem-fraction-static, …), vLLM's
	// exact KV cache size and SGLang's token pool; empty when none.
	MemoryFraction string `json:"memory_fraction,omitempty"`
	KVCacheBytes   int64  `json:"kv_cache_bytes,omitempty"`
	MaxTotalTokens int64  `json:"max_total_tokens,omitempty"`
	// PageCache is what gantry dropped of the checkpoint from the page
	// cache at the model's last start, on unified memory; nil elsewhere.
	PageCache *PageCache `json:"page_cache,omitempty"`
	// Nodes and Rank place a model across nodes (nodes: in the config);
	// on the leader, Ranks is every rank's state.
	Nodes []string     `json:"nodes,omitempty"`
	Rank  int          `json:"rank,omitempty"`
	Ranks []RankStatus `json:"ranks,omitempty"`
}

// PageCache is what one start dropped of a model's checkpoint from the
// page cache on unified memory (where the page cache takes the memory the
// GPU allocates from): before the engine launched, and once it was ready —
// it read its weights through the page cache and copied them, so they
// were in memory twice. Stayed is what the kernel kept: pages the engine
// has mapped (llama.cpp's mmap) cannot be dropped.
type PageCache struct {
	FreedBeforeStartBytes  int64 `json:"freed_before_start_bytes"`
	StayedBeforeStartBytes int64 `json:"stayed_before_start_bytes"`
	// AfterLoad is false until the drop after the load has run.
	AfterLoad            bool  `json:"after_load"`
	FreedAfterLoadBytes  int64 `json:"freed_after_load_bytes"`
	StayedAfterLoadBytes int64 `json:"stayed_after_load_bytes"`
}

// RankStatus is one rank of a model across nodes, as its leader sees it.
type RankStatus struct {
	Rank   int    `json:"rank"`
	Node   string `json:"node"` // "local" or the peer's name
	State  State  `json:"state"`
	PID    int    `json:"pid,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Progress is how far a model's load has come: the phase the engine's own
// lines show (checkpoint shards, CUDA graphs …) and an estimate of the
// whole from the model's previous load.
type Progress struct {
	Phase string `json:"phase"`
	// Fraction of the phase, 0 to 1, from the engine; -1 when it says none.
	Fraction float64 `json:"fraction"`
	// Done and Total count the phase's units (shards, graph shapes).
	Done  int `json:"done,omitempty"`
	Total int `json:"total,omitempty"`
	// ElapsedSeconds since the start began.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// LastLoadSeconds is how long the model's previous load took (0:
	// never loaded here before); Percent and ETASeconds come from it when
	// known, else from the phase.
	LastLoadSeconds float64 `json:"last_load_seconds,omitempty"`
	// Percent is the estimate of the whole load, 0 to 99; -1 unknown.
	Percent int `json:"percent"`
	// ETASeconds is the estimated time left; -1 unknown.
	ETASeconds float64 `json:"eta_seconds"`
}

// MemoryStatus is the budget and what is reserved of it.
type MemoryStatus struct {
	TotalBytes    int64 `json:"total_bytes"`
	BudgetBytes   int64 `json:"budget_bytes"`
	ReservedBytes int64 `json:"reserved_bytes"`
}

// SlotStatus is which member holds a slot.
type SlotStatus struct {
	Name string `json:"name"`
	Port int    `json:"port"` // the members' engine port
	// URL is the slot's own address (slots.<name>.listen) as a client's
	// base URL; "" when it has none.
	URL     string   `json:"url,omitempty"`
	Current string   `json:"current,omitempty"`
	Members []string `json:"members"`
}

// Status is the whole picture: every model sorted by name, the memory
// budget, the slots and the active profile.
type Status struct {
	Models  []ModelStatus `json:"models"`
	Memory  MemoryStatus  `json:"memory"`
	Slots   []SlotStatus  `json:"slots"`
	Profile string        `json:"profile"`
	GPU     gpu.Facts     `json:"gpu"`
	// Peers are the other gantry instances and their models: only when
	// asked for (/api/status?peers=1).
	Peers []PeerStatus `json:"peers,omitempty"`
}

// Peer states.
const (
	PeerUp      = "up"
	PeerDown    = "down"
	PeerUnknown = "unknown" // not checked yet
)

// PeerStatus is another gantry (another box) as this one sees it: up or
// down, and the models it had at its last check.
type PeerStatus struct {
	Name      string      `json:"name"`
	URL       string      `json:"url"`
	State     string      `json:"state"` // PeerUp, PeerDown or PeerUnknown
	Error     string      `json:"error,omitempty"`
	CheckedAt *time.Time  `json:"checked_at,omitempty"`
	Models    []PeerModel `json:"models"`
}

// PeerModel is one name a peer serves, as its /v1/models says.
type PeerModel struct {
	Name    string `json:"name"`
	Engine  string `json:"engine,omitempty"`
	State   State  `json:"state"`
	AliasOf string `json:"alias_of,omitempty"`
}

// Model returns one model's status (the zero value when absent).
func (st Status) Model(name string) ModelStatus {
	for _, m := range st.Models {
		if m.Name == name {
			return m
		}
	}
	return ModelStatus{}
}

// EventKind says what an Event is about.
type EventKind string

// The kinds of events.
const (
	KindState    EventKind = "state"    // an engine changed state (From → To)
	KindEviction EventKind = "eviction" // an idle model was stopped to make room
	KindSwitch   EventKind = "switch"   // a slot switches members (Model is the slot)
	KindProfile  EventKind = "profile"  // the active profile changed
	KindFallback EventKind = "fallback" // a fallback serves for a model that could not
	KindIdle     EventKind = "idle"     // an on-demand model idled out
	KindReload   EventKind = "reload"   // the config was reloaded
	KindRequest  EventKind = "request"  // a gateway request finished
	KindProgress EventKind = "progress" // a load reached a new phase or step
	KindDefault  EventKind = "default"  // a slot's default member comes back
	KindMemory   EventKind = "memory"   // unified memory: the page cache freed, the watchdog acted
	KindPull     EventKind = "pull"     // an image pull began or ended (Model is the image)
	KindPeer     EventKind = "peer"     // a peer went up or down (Model is the peer, To its state)
	KindDownload EventKind = "download" // a download from the Hub began, went on or ended (Model is the repository)
)

// Event is something the scheduler did or saw, for /api/events and logs.
type Event struct {
	Kind   EventKind `json:"kind"`
	Model  string    `json:"model,omitempty"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Reason string    `json:"reason,omitempty"`
	// Diagnosis is the known cause and fix of a failure, when found.
	Diagnosis string `json:"diagnosis,omitempty"`
	// LoadSeconds is, on a change to ready, how long the engine took.
	LoadSeconds float64 `json:"load_seconds,omitempty"`
	// FreedBytes is, on a memory event, what it freed of the page cache.
	FreedBytes int64 `json:"freed_bytes,omitempty"`
	// Request events (for the dashboard's charts): status code, time to
	// the first byte, total time, and streamed chunks (≈ tokens).
	Code       int     `json:"code,omitempty"`
	TTFBMS     float64 `json:"ttfb_ms,omitempty"`
	DurationMS float64 `json:"duration_ms,omitempty"`
	Chunks     int     `json:"chunks,omitempty"`
	// Progress is a progress event's reading.
	Progress *Progress `json:"progress,omitempty"`
	Time     time.Time `json:"time"`
}

// String is the finding as one line: "level: reason — fix".
func (f Finding) String() string { return f.Level + ": " + f.Reason + " — " + f.Fix }

// PullProgress is an image pull's progress, as POST /api/pull streams it: the layers' bytes added up. Total grows as
// the daemon learns each layer's size.
type PullProgress struct {
	Image    string `json:"image"`
	Done     int64  `json:"done_bytes"`
	Total    int64  `json:"total_bytes"`
	Layers   int    `json:"layers"`
	Status   string `json:"status"` // the daemon's last word ("Downloading", "Pull complete" …)
	Finished bool   `json:"finished"`
}

// PullResult is one image's pull, as POST /api/pull ends with it.
type PullResult struct {
	Image  string   `json:"image"`
	Models []string `json:"models"`
	OK     bool     `json:"ok"`
	Bytes  int64    `json:"bytes,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// CheckItem is one thing `gantry check` checked: a model or a service.
type CheckItem struct {
	Name      string  `json:"name"`
	Kind      string  `json:"kind"`   // model | service
	Status    string  `json:"status"` // ok | fail | skip
	Test      string  `json:"test,omitempty"`
	HealthMS  float64 `json:"health_ms,omitempty"`
	TestMS    float64 `json:"test_ms,omitempty"`
	Detail    string  `json:"detail,omitempty"`
	Diagnosis string  `json:"diagnosis,omitempty"`
}

// CheckReport is the whole check, as POST /api/check answers it.
type CheckReport struct {
	OK    bool        `json:"ok"`
	Items []CheckItem `json:"items"`
}
