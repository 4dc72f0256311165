/* libmicrohttpd as the daemon uses it, on the versions the supported
 * systems ship: Debian 12 and Ubuntu 22.04 (JetPack 6) have 0.9.75;
 * Ubuntu 20.04 (JetPack 5) has 0.9.66, from before two renames:
 *   0.9.71  callbacks return enum MHD_Result (int before), MHD_YES/MHD_NO
 *           its values (macros before);
 *   0.9.74  413 is MHD_HTTP_CONTENT_TOO_LARGE (PAYLOAD_TOO_LARGE before).
 * Include this instead of <microhttpd.h>. The 0.9.66 side is not built on
 * this project's CI (no Ubuntu 20.04 there); docker/Dockerfile.jetson's
 * JetPack 5 build is where it compiles, with WERROR=0 (int and the enum
 * are the same in the ABI, but GCC warns on the callbacks' types). */
#ifndef VISIOND_MHD_COMPAT_H
#define VISIOND_MHD_COMPAT_H

#include <microhttpd.h>

#if MHD_VERSION < 0x00097002
enum MHD_Result { MHD_RESULT_COMPAT_ = 0 };
#endif
#ifndef MHD_HTTP_CONTENT_TOO_LARGE
#define MHD_HTTP_CONTENT_TOO_LARGE 413
#endif

#endif
