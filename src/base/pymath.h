/*
 * pymath.h - Python numeric semantics needed for bit-exact agreement with Helix (spec §0.3):
 * round() is round-half-to-even, int() truncates toward zero.
 */
#ifndef HX_BASE_PYMATH_H
#define HX_BASE_PYMATH_H

#include <math.h>

/* Python 3 round(x) for a float, returned as double (half to even). */
static inline double py_round(double x)
{
    /* nearbyint rounds half to even in the default FE_TONEAREST mode, and is exact for
     * every double (unlike floor(x + 0.5), which is wrong from 2^52 upward). */
    return nearbyint(x);
}

/* Python int(x) for a float: truncation toward zero. */
static inline double py_int(double x)
{
    return trunc(x);
}

#endif
