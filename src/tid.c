/*
 * tid.c - TID encode/decode.
 */
#include "tid.h"

static const char tid_alphabet[] = "234567abcdefghijklmnopqrstuvwxyz";

bool
tid_encode(uint64_t timestamp_us, uint32_t clock_id, char out[TID_LEN + 1])
{
	uint64_t	value;
	int			i;

	if (timestamp_us > TID_TIMESTAMP_MAX || clock_id > TID_CLOCK_ID_MAX)
		return false;

	value = (timestamp_us << 10) | clock_id;
	for (i = TID_LEN - 1; i >= 0; i--)
	{
		out[i] = tid_alphabet[value & 31];
		value >>= 5;
	}
	out[TID_LEN] = '\0';
	return true;
}

bool
tid_decode(const char *text, size_t len, uint64_t *timestamp_us, uint32_t *clock_id)
{
	uint64_t	value = 0;
	size_t		i;

	/* tid_valid() guarantees the 13 digits fit in 64 bits. */
	if (!tid_valid(text, len))
		return false;

	for (i = 0; i < TID_LEN; i++)
	{
		char		c = text[i];
		unsigned	digit = (c <= '7') ? (unsigned) (c - '2') : (unsigned) (c - 'a' + 6);

		value = (value << 5) | digit;
	}
	*timestamp_us = value >> 10;
	*clock_id = (uint32_t) (value & TID_CLOCK_ID_MAX);
	return true;
}
