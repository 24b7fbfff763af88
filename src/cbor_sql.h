/*
 * cbor_sql.h - backend helpers around the DAG-CBOR codec, shared by the
 * modules that turn records and frames into JSON and back.
 */
#ifndef RS_CBOR_SQL_H
#define RS_CBOR_SQL_H

#include "postgres.h"
#include "utils/jsonb.h"

#include "cbor.h"

/* ERROR (22P03) naming the offset and rule unless data is valid DAG-CBOR. */
void		rs_validate_cbor(const uint8 *data, size_t len);
void		rs_report_cbor_error(DcborError err, size_t offset, const uint8 *data, size_t len) pg_attribute_noreturn();

/*
 * Canonical DAG-CBOR of any jsonb value under the atproto data model
 * (json_to_cbor): $link/$bytes objects, integers only, $type rules.
 * ERROR 22023 outside the data model, 22P02 for a bad CID or base64,
 * 22003 for an integer out of range, 54000 past DCBOR_MAX_DEPTH.
 */
bytea	   *rs_value_to_cbor(Jsonb *jb);

/* The same for a record: the value must be a JSON object (else 22023). */
bytea	   *rs_record_to_cbor(Jsonb *record);

/*
 * The write path's $type rule, as the reference PDS applies it: a record
 * (object) whose "$type" is a string other than its collection is ERROR
 * 22023 naming the path, the repo and both values.  Returns whether the
 * record has a "$type" (the write path fills in a missing one; an import
 * cannot, see car_import_sql.c).  A non-object or a $type that is not a
 * string is left for rs_record_to_cbor to refuse.  hint (may be NULL) is
 * the error's hint.
 */
bool		rs_record_check_type(Jsonb *record, const char *collection, const char *rkey, const char *did,
								 const char *hint);

/*
 * The one CBOR -> jsonb path: cbor_to_json, frame_to_json, the output
 * plugin's JSON mode (and any importer) all decode through it.  Any
 * DAG-CBOR value is accepted (a top-level scalar becomes a jsonb scalar).
 * ERROR 22P03 for invalid DAG-CBOR; 22P05 for text (value or map key)
 * containing U+0000, which text and jsonb cannot hold; 22023 for a map
 * json_to_cbor could not write back (a "$link" or "$bytes" key, a "$type"
 * that is not a non-empty string, a "blob" without ref/mimeType/size).
 * what (may be NULL) names the item in messages: "frame body", ...; byte
 * offsets are relative to data.
 */
Jsonb	   *rs_cbor_to_jsonb(const uint8 *data, size_t len, const char *what);

#endif
