/* GET /: the try-it page (server/page.html), built into the binary so an
 * installed daemon needs no web root. The Makefile turns the HTML into a C
 * string (build/gen/page_html.inc) with sed: no build tool for a page. */
#include <stdlib.h>
#include <string.h>

#include "server.h"

static const char page[] =
#include "page_html.inc"
    ;

enum MHD_Result api_page(request *r)
{
    size_t len = sizeof page - 1;
    char *copy = malloc(len + 1); /* responses own and free their bytes */
    if (!copy)
        return http_respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    memcpy(copy, page, len + 1);
    return http_respond_text(r, MHD_HTTP_OK, "text/html; charset=utf-8", copy, len);
}
