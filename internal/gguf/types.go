package gguf

import "fmt"

// GGMLType is a tensor's storage type.
type GGMLType uint32

// The ggml tensor types gantry knows the layout of.
const (
	F32     GGMLType = 0
	F16     GGMLType = 1
	Q4_0    GGMLType = 2
	Q4_1    GGMLType = 3
	Q5_0    GGMLType = 6
	Q5_1    GGMLType = 7
	Q8_0    GGMLType = 8
	Q8_1    GGMLType = 9
	Q2_K    GGMLType = 10
	Q3_K    GGMLType = 11
	Q4_K    GGMLType = 12
	Q5_K    GGMLType = 13
	Q6_K    GGMLType = 14
	Q8_K    GGMLType = 15
	IQ2_XXS GGMLType = 16
	IQ2_XS  GGMLType = 17
	IQ3_XXS GGMLType = 18
	IQ1_S   GGMLType = 19
	IQ4_NL  GGMLType = 20
	IQ3_S   GGMLType = 21
	IQ2_S   GGMLType = 22
	IQ4_XS  GGMLType = 23
	I8      GGMLType = 24
	I16     GGMLType = 25
	I32     GGMLType = 26
	I64     GGMLType = 27
	F64     GGMLType = 28
	IQ1_M   GGMLType = 29
	BF16    GGMLType = 30
	TQ1_0   GGMLType = 34
	TQ2_0   GGMLType = 35
	MXFP4   GGMLType = 39
)

// blockLayout is how many values a block holds and how many bytes it takes
// (ggml's blck_size and type_size).
type blockLayout struct{ size, bytes uint64 }

var blockLayouts = map[GGMLType]blockLayout{
	F32: {1, 4}, F16: {1, 2}, BF16: {1, 2}, F64: {1, 8},
	I8: {1, 1}, I16: {1, 2}, I32: {1, 4}, I64: {1, 8},
	Q4_0: {32, 18}, Q4_1: {32, 20}, Q5_0: {32, 22}, Q5_1: {32, 24}, Q8_0: {32, 34}, Q8_1: {32, 36},
	Q2_K: {256, 84}, Q3_K: {256, 110}, Q4_K: {256, 144}, Q5_K: {256, 176}, Q6_K: {256, 210}, Q8_K: {256, 292},
	IQ2_XXS: {256, 66}, IQ2_XS: {256, 74}, IQ3_XXS: {256, 98}, IQ1_S: {256, 50}, IQ4_NL: {32, 18},
	IQ3_S: {256, 110}, IQ2_S: {256, 82}, IQ4_XS: {256, 136}, IQ1_M: {256, 56},
	TQ1_0: {256, 54}, TQ2_0: {256, 66}, MXFP4: {32, 17},
}

var typeNames = map[GGMLType]string{
	F32: "F32", F16: "F16", BF16: "BF16", F64: "F64", I8: "I8", I16: "I16", I32: "I32", I64: "I64",
	Q4_0: "Q4_0", Q4_1: "Q4_1", Q5_0: "Q5_0", Q5_1: "Q5_1", Q8_0: "Q8_0", Q8_1: "Q8_1",
	Q2_K: "Q2_K", Q3_K: "Q3_K", Q4_K: "Q4_K", Q5_K: "Q5_K", Q6_K: "Q6_K", Q8_K: "Q8_K",
	IQ2_XXS: "IQ2_XXS", IQ2_XS: "IQ2_XS", IQ3_XXS: "IQ3_XXS", IQ1_S: "IQ1_S", IQ4_NL: "IQ4_NL",
	IQ3_S: "IQ3_S", IQ2_S: "IQ2_S", IQ4_XS: "IQ4_XS", IQ1_M: "IQ1_M", TQ1_0: "TQ1_0", TQ2_0: "TQ2_0", MXFP4: "MXFP4",
}

func (t GGMLType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type%d", uint32(t))
}

// fileTypes are llama.cpp's general.file_type values (llama_ftype).
var fileTypes = map[uint64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
	16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
	22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
	28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}

// FileTypeName names a general.file_type value, e.g. 15 → "Q4_K_M".
func FileTypeName(ft uint64) string {
	if n, ok := fileTypes[ft]; ok {
		return n
	}
	return fmt.Sprintf("file_type %d", ft)
}

// FileTypeBits is the nominal bits per weight of a file type, 0 if unknown.
func FileTypeBits(name string) int {
	switch {
	case name == "F32":
		return 32
	case name == "F16" || name == "BF16":
		return 16
	case len(name) >= 2 && (name[0] == 'Q' || name[:2] == "IQ" || name[:2] == "TQ"):
		for _, c := range name {
			if c >= '1' && c <= '8' {
				return int(c - '0')
			}
		}
	case name == "MXFP4_MOE":
		return 4
	}
	return 0
}
