#ifndef CONSENTRY_CSODIUM_SHIM_H
#define CONSENTRY_CSODIUM_SHIM_H
#include <sodium.h>
#endif
