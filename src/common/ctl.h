/*
 * ctl.h - where control endpoints live.  Shared by the runtime (no stdio,
 * no heap) and the tools.
 *
 * The control directory is $HEAPTRACE_RUNTIME_DIR if set, else
 * $XDG_RUNTIME_DIR/heaptrace, else /tmp/heaptrace-<uid>.  It must be a
 * directory owned by the user with no group or other permissions; the
 * runtime opens no endpoint otherwise.  A process's endpoint is
 * <dir>/<pid>.sock.
 */
#ifndef HT_CTL_H
#define HT_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Builds the directory name for user `uid` from the given environment
 * values (NULL when unset) into out.  0, or -ENAMETOOLONG. */
int ht_ctl_dir_name(char *out, size_t len, const char *ht_dir, const char *xdg, uid_t uid);

/* The calling process's control directory (from its environment),
 * created mode 0700 when `create`, and checked: 0, -errno, or -EPERM when
 * it exists but is not a private directory of uid. */
int ht_ctl_dir(char *out, size_t len, int create);

/* Checks an existing directory: ours (uid) and private. */
int ht_ctl_dir_check(const char *dir, uid_t uid);

/* <dir>/<pid>.sock into out; 0 or -ENAMETOOLONG (sun_path is 108 bytes). */
int ht_ctl_sock_path(char *out, size_t len, const char *dir, uint32_t pid);

#endif
