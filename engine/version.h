#ifndef RP_ENGINE_VERSION_H
#define RP_ENGINE_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

/* rp_version returns the library version string, e.g. "0.1.0". */
const char *rp_version(void);

#ifdef __cplusplus
}
#endif
#endif
