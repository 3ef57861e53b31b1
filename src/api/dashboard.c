/*
 * dashboard.c - the dashboard page (src/api/dashboard.html) built into the binary, so GET
 * /dashboard needs no file at run time and no other origin (docs/dashboard.md). The assembler
 * includes the file's bytes (.incbin, relative to the repository root, where make runs) and a
 * terminating NUL; the Makefile makes this object depend on the HTML.
 */
#include <stddef.h>

#include "api/api.h"

__asm__(".section .rodata\n"
        ".balign 16\n"
        ".globl hx_dashboard_html\n"
        ".hidden hx_dashboard_html\n"
        "hx_dashboard_html:\n"
        ".incbin \"src/api/dashboard.html\"\n"
        ".globl hx_dashboard_html_end\n"
        ".hidden hx_dashboard_html_end\n"
        "hx_dashboard_html_end:\n"
        ".byte 0\n"
        ".previous\n");

extern const char hx_dashboard_html[] __attribute__((visibility("hidden")));
extern const char hx_dashboard_html_end[] __attribute__((visibility("hidden")));

const char *api_dashboard_page(size_t *n)
{
    *n = (size_t)(hx_dashboard_html_end - hx_dashboard_html);
    return hx_dashboard_html;
}
