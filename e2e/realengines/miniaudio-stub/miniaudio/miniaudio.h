/*
 * A stand-in for miniaudio.h, for building Ollama v0.17.4 from the Go module
 * proxy in gantry's test suite: the module zip leaves out the header that
 * llama.cpp's tools/mtmd/mtmd-helper.cpp includes (audio input for
 * multimodal models). It declares only what that file uses, and its decoder
 * always fails, so audio input is refused ("Unable to read WAV audio file
 * from buffer") — which no test sends. Text, embeddings and everything
 * gantry drives are unaffected. Not miniaudio's code: a stub of its API.
 */
#ifndef GANTRY_MINIAUDIO_STUB_H
#define GANTRY_MINIAUDIO_STUB_H

#include <stddef.h>
#include <stdint.h>

typedef int ma_result;
#define MA_SUCCESS 0
#define MA_ERROR (-1)

typedef uint32_t ma_uint32;
typedef uint64_t ma_uint64;

typedef enum { ma_format_unknown = 0, ma_format_f32 = 5 } ma_format;
typedef enum { ma_encoding_format_unknown = 0, ma_encoding_format_wav = 1 } ma_encoding_format;

typedef struct { ma_format format; ma_uint32 channels; ma_uint32 sampleRate; } ma_decoder_config;
typedef struct { int unused; } ma_decoder;
typedef struct { ma_encoding_format encodingFormat; ma_format format; ma_uint32 channels; ma_uint32 sampleRate; } ma_encoder_config;
typedef struct { int unused; } ma_encoder;

static ma_decoder_config ma_decoder_config_init(ma_format format, ma_uint32 channels, ma_uint32 rate) {
    ma_decoder_config c = {format, channels, rate};
    return c;
}
static ma_result ma_decoder_init_memory(const void *data, size_t size, const ma_decoder_config *config, ma_decoder *decoder) {
    (void)data; (void)size; (void)config; (void)decoder;
    return MA_ERROR;
}
static ma_result ma_decoder_get_length_in_pcm_frames(ma_decoder *decoder, ma_uint64 *frames) {
    (void)decoder;
    *frames = 0;
    return MA_ERROR;
}
static ma_result ma_decoder_read_pcm_frames(ma_decoder *decoder, void *out, ma_uint64 count, ma_uint64 *read) {
    (void)decoder; (void)out; (void)count;
    if (read) *read = 0;
    return MA_ERROR;
}
static ma_result ma_decoder_uninit(ma_decoder *decoder) {
    (void)decoder;
    return MA_SUCCESS;
}
static ma_encoder_config ma_encoder_config_init(ma_encoding_format encoding, ma_format format, ma_uint32 channels, ma_uint32 rate) {
    ma_encoder_config c = {encoding, format, channels, rate};
    return c;
}
static ma_result ma_encoder_init_file(const char *path, const ma_encoder_config *config, ma_encoder *encoder) {
    (void)path; (void)config; (void)encoder;
    return MA_ERROR;
}
static ma_result ma_encoder_write_pcm_frames(ma_encoder *encoder, const void *in, ma_uint64 count, ma_uint64 *written) {
    (void)encoder; (void)in; (void)count;
    if (written) *written = 0;
    return MA_ERROR;
}
static ma_result ma_encoder_uninit(ma_encoder *encoder) {
    (void)encoder;
    return MA_SUCCESS;
}

#endif
