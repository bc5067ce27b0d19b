/*
 * roostctl manual pages: `roostctl --help`, `roostctl GROUP --help` and
 * `roostctl GROUP COMMAND --help`, in the layout of man(7) so that an
 * admin finds things where they expect them.  The command list and the
 * synopses come from the command table, so they cannot drift from what
 * the parser accepts.
 */
#include <stdio.h>
#include <string.h>

#include "admin/admin_int.h"

#define WRAP_COLUMN 78
#define GLOBAL_SYNOPSIS ADMIN_PROG " [-c FILE] [--json]"

static const char exit_status[] =
	"EXIT STATUS\n"
	"    0   success\n"
	"    1   failure: no such user or mailbox, already exists, refused,\n"
	"        or (index check) the index differs from the files\n"
	"    2   usage error: unknown command or option, missing or invalid\n"
	"        argument\n"
	"    75  temporary failure (database locked, disk or I/O error):\n"
	"        try again later\n"
	"    78  configuration error: unreadable or invalid config file,\n"
	"        mail_user missing or unknown when run as root\n";

static const char common_options[] =
	"    --json\n"
	"        Print the result as one JSON document (for scripts).\n"
	"    -h, --help\n"
	"        Show this text.\n"
	"    Global options (-c FILE, -v) are described in 'roostctl "
	"--help'.\n";

/*
 * Prints "prefix words..." wrapped at WRAP_COLUMN, continuation lines
 * indented under the first argument.  Breaks only at spaces outside
 * brackets, so "[--quota BYTES]" stays in one piece.
 */
static void
print_synopsis(FILE *out, const char *prefix, const char *args)
{
	size_t col, indent, len, depth;
	const char *p = args, *start;

	fprintf(out, "    %s", prefix);
	col = 4 + strlen(prefix);
	indent = col + 1;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		start = p;
		depth = 0;
		for (; *p != '\0' && (*p != ' ' || depth > 0); p++) {
			if (*p == '[')
				depth++;
			else if (*p == ']' && depth > 0)
				depth--;
		}
		len = (size_t)(p - start);
		if (col + 1 + len > WRAP_COLUMN && col > indent) {
			fprintf(out, "\n%*s", (int)indent, "");
			col = indent;
		} else {
			fputc(' ', out);
			col++;
		}
		fwrite(start, 1, len, out);
		col += len;
	}
	fputc('\n', out);
}

static void
print_cmd_synopsis(FILE *out, const struct admin_cmd *cmd)
{
	char prefix[128];

	if (rb_snprintf(prefix, sizeof(prefix), "%s %s %s", GLOBAL_SYNOPSIS,
			cmd->group, cmd->name) < 0)
		return;
	print_synopsis(out, prefix, cmd->args);
}

/* "user add ADDRESS" padded, then the summary. */
static void
print_cmd_list(FILE *out, const char *group, bool with_group)
{
	char name[64];
	size_t i;

	for (i = 0; i < admin_cmd_count; i++) {
		const struct admin_cmd *cmd = &admin_cmds[i];

		if (group != NULL && strcmp(cmd->group, group) != 0)
			continue;
		if (with_group)
			rb_snprintf(name, sizeof(name), "%s %s", cmd->group,
				    cmd->name);
		else
			rb_strlcpy(name, cmd->name, sizeof(name));
		fprintf(out, "    %-20s %s\n", name, cmd->summary);
	}
}

void
admin_help_main(FILE *out)
{
	fputs("NAME\n"
	      "    roostctl - administer a roost mail store\n"
	      "\n"
	      "SYNOPSIS\n"
	      "    roostctl [-c FILE] [--json] [-v] COMMAND [ARGUMENTS...]\n"
	      "    roostctl COMMAND --help\n"
	      "    roostctl help [GROUP [COMMAND]]\n"
	      "\n"
	      "DESCRIPTION\n"
	      "    roostctl manages the users, aliases and domains of a roost\n"
	      "    mail store (data_dir/users.db) and the users' mailboxes and\n"
	      "    indexes (data_dir/mail/DOMAIN/LOCAL/).  It reads the same\n"
	      "    configuration file as the roost daemons and may run while\n"
	      "    they do.\n"
	      "\n"
	      "    Run as root, roostctl creates data_dir if it is missing and\n"
	      "    then switches to [general] mail_user before it touches any\n"
	      "    file, so everything it creates belongs to the user the\n"
	      "    daemons run as.  As root without mail_user it refuses to\n"
	      "    run.\n"
	      "\n"
	      "    Results are aligned text tables, or one JSON document with\n"
	      "    --json.  Errors are one line on standard error starting\n"
	      "    with \"roostctl:\".\n"
	      "\n"
	      "COMMANDS\n", out);
	print_cmd_list(out, NULL, true);
	fputs("\n"
	      "OPTIONS\n"
	      "    -c FILE, --config FILE\n"
	      "        Configuration file (default " RB_CONFIG_DEFAULT ").\n"
	      "    --json\n"
	      "        Print results as one JSON document instead of text.\n"
	      "        May also be given after the command.\n"
	      "    -v, --verbose\n"
	      "        Log debug messages of the storage and auth layers to\n"
	      "        standard error.\n"
	      "    -h, --help\n"
	      "        Show this text; after a group or command, its manual.\n"
	      "\n", out);
	fputs(exit_status, out);
	fputs("\n"
	      "FILES\n"
	      "    " RB_CONFIG_DEFAULT "\n"
	      "        Default configuration file.\n"
	      "    DATA_DIR/users.db\n"
	      "        Users, password hashes, aliases and domains (SQLite).\n"
	      "    DATA_DIR/mail/DOMAIN/LOCAL/\n"
	      "        A user's Maildir++ folders and index (roost.db).\n"
	      "\n"
	      "EXAMPLES\n"
	      "    Add a user with a password and a 2 GiB quota:\n"
	      "        printf '%s\\n' \"$pw\" |\n"
	      "            roostctl user add alice@example.com "
	      "--password-stdin --quota 2G\n"
	      "    Make postmaster@ reach two people:\n"
	      "        roostctl alias add postmaster@example.com "
	      "alice@example.com\n"
	      "        roostctl alias add postmaster@example.com "
	      "bob@example.com\n"
	      "    See mailboxes and usage:\n"
	      "        roostctl mailbox status alice@example.com\n"
	      "        roostctl --json user show alice@example.com\n"
	      "    Repair an index after copying mail in by hand:\n"
	      "        roostctl index check alice@example.com ||\n"
	      "            roostctl index rebuild alice@example.com\n", out);
}

void
admin_help_group(FILE *out, const struct admin_group *group)
{
	size_t i;

	fprintf(out, "NAME\n    roostctl %s - %s\n\nSYNOPSIS\n", group->name,
		group->summary);
	for (i = 0; i < admin_cmd_count; i++) {
		if (strcmp(admin_cmds[i].group, group->name) == 0)
			print_cmd_synopsis(out, &admin_cmds[i]);
	}
	fprintf(out, "\nDESCRIPTION\n%s\n\n", group->description);
	print_cmd_list(out, group->name, false);
	fprintf(out, "\n    'roostctl %s COMMAND --help' shows the manual of "
		"one command.\n\nOPTIONS\n%s\n%s", group->name,
		common_options, exit_status);
}

void
admin_help_cmd(FILE *out, const struct admin_cmd *cmd)
{
	fprintf(out, "NAME\n    roostctl %s %s - %s\n\nSYNOPSIS\n",
		cmd->group, cmd->name, cmd->summary);
	print_cmd_synopsis(out, cmd);
	fprintf(out, "\nDESCRIPTION\n%s\nOPTIONS\n", cmd->description);
	if (cmd->options != NULL)
		fputs(cmd->options, out);
	fprintf(out, "%s\n%s", common_options, exit_status);
	if (cmd->examples != NULL)
		fprintf(out, "\nEXAMPLES\n%s", cmd->examples);
}
