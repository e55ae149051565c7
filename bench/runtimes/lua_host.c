/* obm-lua: Lua 5.4 with obm as its allocator.
 *
 *   obm-lua [--default-alloc] script.lua args...
 *
 * The state is made with lua_newstate and an allocation function on
 * obm_realloc and obm_free, following lua_Alloc's contract: nsize 0 frees
 * (ptr may be NULL) and returns NULL; ptr NULL allocates nsize bytes;
 * otherwise the block of osize bytes is resized, and NULL is returned
 * only when that fails, leaving the block as it was. --default-alloc uses
 * luaL_newstate (Lua's own allocator on the C library's realloc and
 * free) instead, for comparison. The script sees its arguments in `arg`
 * as with the stock `lua` interpreter. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "obm.h"

static void *obm_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        obm_free(ptr);
        return NULL;
    }
    return obm_realloc(ptr, nsize);
}

/* As the stock interpreter does: errors name the script and line. */
static int report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "obm-lua: %s\n", msg != NULL ? msg : "(error object is not a string)");
        lua_pop(L, 1);
    }
    return status;
}

int main(int argc, char **argv)
{
    int first = 1;
    bool use_obm = true;
    if (argc > 1 && strcmp(argv[1], "--default-alloc") == 0) {
        use_obm = false;
        first = 2;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: obm-lua [--default-alloc] script.lua [args...]\n");
        return 2;
    }
    lua_State *L = use_obm ? lua_newstate(obm_lua_alloc, NULL) : luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "obm-lua: cannot create the Lua state (out of memory)\n");
        return 1;
    }
    luaL_openlibs(L);
    /* arg[0] is the script, arg[1..] its arguments, as `lua script args`. */
    lua_createtable(L, argc - first - 1, 1);
    for (int i = first; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - first);
    }
    lua_setglobal(L, "arg");
    int status = luaL_loadfile(L, argv[first]);
    if (status == LUA_OK) {
        for (int i = first + 1; i < argc; i++)
            lua_pushstring(L, argv[i]);
        status = lua_pcall(L, argc - first - 1, 0, 0);
    }
    report(L, status);
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
