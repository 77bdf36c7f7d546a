#ifndef RP_KEYS_KS_PKCS11_H
#define RP_KEYS_KS_PKCS11_H

#include "rp_compiler.h"
#include "rp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The PKCS#11 keystore (rp_keystore_pkcs11_new in keystore.h). The module
 * is loaded and C_Initialize'd once per process, on the first store, and
 * stays loaded; stores only open and close sessions.
 */

/* Labels of the objects the backend puts on a token. */
#define RP_PKCS11_KEK_LABEL "reprotect-backup-kek"

/*
 * rp_pkcs11_finalize calls C_Finalize on the process's module if no
 * PKCS#11 keystore is open, so a later rp_keystore_pkcs11_new initialises
 * it again. Call it at exit, before OPENSSL_cleanup. Returns RP_ERR_STATE
 * (and does nothing) while a store is still open; RP_OK if nothing was
 * loaded.
 */
RP_MUST_CHECK enum rp_err rp_pkcs11_finalize(struct rp_status *st);

#ifdef __cplusplus
}
#endif
#endif
