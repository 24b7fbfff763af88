/*
 * seeds.c - writes the fuzzers' seed corpora from the test fixtures:
 *
 *   seeds <outdir>
 *
 * reads test/fixtures/frames/frames.json (signed frames the unit tests
 * produce) and the atproto data-model fixtures, and writes one file per
 * seed under <outdir>/<harness>/: frames (frame, verify), their CARs
 * (car), commit blocks (commit), MST nodes (mst), every DAG-CBOR item
 * (cbor: headers, bodies, blocks, data-model vectors) and data-model JSON
 * (json).  Run from the top of the tree (make fuzz does).
 */
#include <errno.h>
#include <jansson.h>
#include <sys/stat.h>

#include "car.h"
#include "cbor.h"
#include "commit.h"
#include "frame.h"
#include "mst.h"

static const char *outdir;
static int	count;

static void
put(const char *harness, const void *data, size_t len)
{
	char		path[4096];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, harness);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
	{
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/seed-%04d", outdir, harness, count++);
	if ((f = fopen(path, "wb")) == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
	{
		perror(path);
		exit(1);
	}
}

static size_t
unhex(const char *hex, uint8_t *out)
{
	size_t		n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
	return n;
}

static void
frame_seeds(const uint8_t *data, size_t len)
{
	Frame		f;
	const uint8_t *blocks;
	size_t		blocks_len;
	CarReader	r;
	CarBlock	b;

	put("frame", data, len);
	put("verify", data, len);
	if (frame_decode(data, len, &f, NULL, 0) != FRAME_OK)
		return;
	put("cbor", f.header, f.header_len);
	put("cbor", f.body, f.body_len);
	blocks = frame_blocks(&f, &blocks_len);
	if (blocks != NULL)
	{
		put("car", blocks, blocks_len);
		if (car_reader_open(&r, blocks, blocks_len) == CAR_OK)
			while (car_reader_next(&r, &b))
			{
				MstNodeData node;
				RepoCommit	c;

				put("cbor", b.data, b.len);
				if (commit_decode(b.data, b.len, true, &c, NULL, 0) == COMMIT_OK)
					put("commit", b.data, b.len);
				if (mst_node_decode(b.data, b.len, &node, NULL, 0) == MST_OK)
				{
					put("mst", b.data, b.len);
					mst_node_data_free(&node);
				}
			}
	}
	frame_free(&f);
}

static json_t *
load(const char *path)
{
	json_error_t err;
	json_t	   *j = json_load_file(path, 0, &err);

	if (j == NULL)
	{
		fprintf(stderr, "%s:%d: %s\n", path, err.line, err.text);
		exit(1);
	}
	return j;
}

int
main(int argc, char **argv)
{
	json_t	   *frames,
			   *dm,
			   *v;
	size_t		i;
	const char *jsons[] = {
		"test/fixtures/atproto-interop/data-model/data-model-fixtures.json",
		"test/fixtures/atproto-interop/data-model/data-model-valid.json",
		"test/fixtures/atproto-interop/data-model/data-model-invalid.json",
	};

	if (argc != 2)
	{
		fprintf(stderr, "usage: seeds <outdir>\n");
		return 2;
	}
	outdir = argv[1];
	mkdir(outdir, 0755);

	frames = load("test/fixtures/frames/frames.json");
	json_array_foreach(json_object_get(frames, "frames"), i, v)
	{
		const char *hex = json_string_value(json_object_get(v, "hex"));
		uint8_t    *buf = malloc(strlen(hex) / 2 + 1);

		frame_seeds(buf, unhex(hex, buf));
		free(buf);
	}
	json_decref(frames);

	for (size_t k = 0; k < sizeof(jsons) / sizeof(jsons[0]); k++)
	{
		dm = load(jsons[k]);
		json_array_foreach(dm, i, v)
		{
			char	   *text = json_dumps(json_object_get(v, "json"), JSON_ENCODE_ANY | JSON_COMPACT);
			const char *b64 = json_string_value(json_object_get(v, "cbor_base64"));

			put("json", text, strlen(text));
			free(text);
			if (b64 != NULL)
			{
				RsBuf		cbor;

				rs_buf_init(&cbor, strlen(b64));
				if (dcbor_base64_decode(b64, strlen(b64), &cbor))
					put("cbor", cbor.data, cbor.len);
				rs_buf_free(&cbor);
			}
		}
		json_decref(dm);
	}
	printf("%d seeds in %s\n", count, outdir);
	return 0;
}
