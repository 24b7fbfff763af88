/*
 * lock_guard_sql.h - refuses LOCK TABLE in modes that stall writers on the
 * extension's relations (see lock_guard_sql.c).
 */
#ifndef RS_LOCK_GUARD_SQL_H
#define RS_LOCK_GUARD_SQL_H

/* Install the ProcessUtility hook; from _PG_init. */
void		rs_lock_guard_init(void);

#endif
