// Further op bindings added as models need them (same GR_OP pattern).
#include "common.h"
