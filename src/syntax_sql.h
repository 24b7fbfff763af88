/*
 * syntax_sql.h - backend side of identifiers: TID generation.
 */
#ifndef RS_SYNTAX_SQL_H
#define RS_SYNTAX_SQL_H

#include "syntax.h"

/* A fresh TID: strictly increasing in this backend, unique across backends. */
void		rs_tid_next(char out[TID_LEN + 1]);

#endif
