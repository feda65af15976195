/*
 * wire.h: the frame format spoken over every websocket (bzsshd <-> bzproxy
 * <-> bzagent). docs/protocol.md describes it; this is its only codec.
 *
 * Header, 24 bytes, big-endian:
 *   u8  version      BZ_WIRE_VERSION
 *   u8  type         enum bz_frame_type
 *   u16 flags        BZ_FLAG_*; unknown bits are rejected
 *   u32 session_id   assigned by bzproxy on the agent link; 0 on client links
 *   u32 channel_id   SSH channel number chosen by bzsshd; 0 = connection level
 *   u64 seq          per-sender sequence number (reserved for the signed
 *                    protocol; senders fill it, receivers may ignore it)
 *   u32 length       payload bytes that follow, <= BZ_WIRE_MAX_PAYLOAD
 *                    (BZ_WIRE_MAX_CONTROL for CONTROL frames)
 */
#ifndef BZ_WIRE_H
#define BZ_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define BZ_WIRE_VERSION 2
#define BZ_WIRE_HEADER_LEN 24
#define BZ_WIRE_MAX_PAYLOAD (64u * 1024)
/* CONTROL frames may be larger: an exec request carries a command line of
 * up to BZ_WIRE_COMMAND_MAX bytes (what fits in one SSH packet, as with
 * sshd), JSON-escaped and base64'd inside bzproxy's envelope, plus the ID
 * token and environment. */
#define BZ_WIRE_MAX_CONTROL (4u * 1024 * 1024)
#define BZ_WIRE_COMMAND_MAX (256u * 1024)
#define BZ_WIRE_MAX_DATA_FRAME (BZ_WIRE_HEADER_LEN + BZ_WIRE_MAX_PAYLOAD)
#define BZ_WIRE_MAX_FRAME (BZ_WIRE_HEADER_LEN + BZ_WIRE_MAX_CONTROL)
/* Largest DATA payload a sender should produce: 1 KiB under the maximum
 * leaves room for sealing (AEAD tag, nonce). Near-full frames halve the
 * per-message work (callbacks, wakeups, allocations) of 32 KiB ones. */
#define BZ_WIRE_DATA_CHUNK (BZ_WIRE_MAX_PAYLOAD - 1024u)
/* Initial per-channel, per-direction flow-control window. */
#define BZ_WIRE_INITIAL_WINDOW (2u * 1024 * 1024)

enum bz_frame_type {
	BZ_FRAME_CONTROL = 0x01,  /* JSON object with a "t" member */
	BZ_FRAME_DATA = 0x02,     /* channel bytes (stdout / stdin) */
	BZ_FRAME_EXT_DATA = 0x03, /* channel stderr bytes */
	BZ_FRAME_EOF = 0x04,      /* no more data from the sender on channel */
	BZ_FRAME_CLOSE = 0x05,    /* channel closed by the sender */
	BZ_FRAME_WINDOW = 0x06,   /* payload u32: bytes of credit granted */
};

/* Flags: a CONTROL payload is JSON followed by a 64-byte Ed25519
 * signature over that JSON by bzproxy (toward an agent), by the client key
 * (from bzsshd), or by the agent's identity key (from an agent). At most
 * one of them. */
#define BZ_FLAG_PROXY_SIGNED 0x0001u
#define BZ_FLAG_CLIENT_SIGNED 0x0002u
#define BZ_FLAG_AGENT_SIGNED 0x0004u
#define BZ_FLAGS_SIGNED (BZ_FLAG_PROXY_SIGNED | BZ_FLAG_CLIENT_SIGNED | \
	BZ_FLAG_AGENT_SIGNED)
/* Flag: a DATA, EXT_DATA or EOF payload sealed end to end (common/seal.h):
 * ciphertext and a 16-byte tag. A sealed EOF's plaintext is empty, or a
 * session's exit status (JSON, at most BZ_EOF_EXIT_MAX bytes). */
#define BZ_FLAG_SEALED 0x0008u
#define BZ_SEALED_TAG 16u
#define BZ_EOF_EXIT_MAX 256u
#define BZ_FLAG_KNOWN (BZ_FLAGS_SIGNED | BZ_FLAG_SEALED)
#define BZ_SIG_LEN 64

struct bz_frame {
	uint8_t version;
	uint8_t type;
	uint16_t flags;
	uint32_t session_id;
	uint32_t channel_id;
	uint64_t seq;
	const uint8_t *payload; /* points into the buffer it was decoded from */
	uint32_t length;
};

/* Largest payload a frame of this type may carry. */
size_t bz_frame_max_payload(uint8_t type);

/* Name of a frame type, for logs ("control", "data", ...; "unknown"). */
const char *bz_frame_type_name(uint8_t type);

/*
 * Decode one whole frame from exactly the bytes of one websocket message.
 * Returns 0, BZ_ERR_SHORT (truncated header or payload), BZ_ERR_TOO_BIG
 * (length over the type's maximum), BZ_ERR_VERSION, BZ_ERR_TYPE (unknown
 * type), or BZ_ERR_FORMAT (unknown flags, trailing bytes, or a type-specific
 * payload of the wrong size). f->payload borrows from msg.
 */
int bz_frame_decode(const uint8_t *msg, size_t len, struct bz_frame *f);

/*
 * Append an encoded frame to out. lws callers reserve LWS_PRE bytes in front
 * themselves. Returns 0 or BZ_ERR_TOO_BIG / BZ_ERR_ALLOC / BZ_ERR_TYPE.
 */
int bz_frame_encode(struct bz_buf *out, uint8_t type, uint16_t flags,
    uint32_t session_id, uint32_t channel_id, uint64_t seq,
    const void *payload, size_t length);

/* Read the u32 credit of a WINDOW frame. */
int bz_frame_window_credit(const struct bz_frame *f, uint32_t *credit);

#endif
