/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json-lines < FILE: every line of standard input is one valid JSON value
 * (parsed by jansson, not by the writer that made it). Prints the count;
 * exits 1 naming the first line that is not, 0 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

int
main(void)
{
	char		*line = NULL;
	size_t		cap = 0;
	ssize_t		n;
	unsigned long	count = 0;
	json_error_t	err;
	json_t		*v;

	while ((n = getline(&line, &cap, stdin)) > 0) {
		count++;
		if ((v = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, &err)) == NULL) {
			printf("line %lu is not JSON: %s\n", count, err.text);
			free(line);
			return 1;
		}
		json_decref(v);
	}
	free(line);
	printf("%lu lines, each valid JSON\n", count);
	return count > 0 ? 0 : 1;
}
