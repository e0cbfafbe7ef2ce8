// The header must compile as C++ too, with C linkage for every function.
#include <bottle.h>

static_assert(BOTTLE_OK == 0, "BOTTLE_OK is zero");

int main() {
    bottle *b = nullptr;
    bottle_status s = bottle_open("cpp", nullptr, &b);
    bottle_close(b);
    return s == BOTTLE_OK || s == BOTTLE_ERR_SMOLVM_NOT_FOUND ? 0 : 1;
}
