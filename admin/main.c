/* roostctl: see admin/admin_main.c and `roostctl --help`. */
#include "admin/admin.h"

int
main(int argc, char **argv)
{
	return admin_main(argc, argv);
}
