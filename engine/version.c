#include "version.h"

const char *rp_version(void)
{
	return "0.1.0";
}
