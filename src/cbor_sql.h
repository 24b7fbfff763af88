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

bytea	   *rs_jsonb_to_cbor(Jsonb *jb);
Jsonb	   *rs_cbor_to_jsonb(const uint8 *data, size_t len);

#endif
