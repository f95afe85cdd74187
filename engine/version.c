/* The library version string, from the build. Any thread. */
#include "rill_config.h"
#include "rill/rill.h"

const char *rill_version(void)
{
	return RILL_VERSION;
}
