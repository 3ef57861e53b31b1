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
    double r = floor(x + 0.5);
    if (r - x == 0.5 && fmod(r, 2.0) != 0.0) {
        r -= 1.0; /* exactly halfway and r is odd: go to the even neighbour */
    }
    return r;
}

/* Python int(x) for a float: truncation toward zero. */
static inline double py_int(double x)
{
    return trunc(x);
}

#endif
