#include "pqa/rollup/types.h"

namespace pqa::rollup {

std::string_view to_string(Role r) {
  switch (r) {
    case Role::kUnknown:
      return "unknown";
    case Role::kMember:
      return "member";
    case Role::kChampion:
      return "champion";
    case Role::kAdmin:
      return "admin";
    case Role::kBillingOwner:
      return "billing_owner";
  }
  return "unknown";
}

std::string_view to_string(Band b) {
  switch (b) {
    case Band::kCold:
      return "cold";
    case Band::kNurture:
      return "nurture";
    case Band::kQualified:
      return "qualified";
    case Band::kHot:
      return "hot";
  }
  return "cold";
}

std::string_view to_string(Pattern p) {
  switch (p) {
    case Pattern::kNone:
      return "none";
    case Pattern::kHealthyExpansion:
      return "healthy_expansion";
    case Pattern::kStalledProvisioning:
      return "stalled_provisioning";
    case Pattern::kSaturated:
      return "saturated";
    case Pattern::kContracting:
      return "contracting";
  }
  return "none";
}

std::string_view to_string(Routing r) {
  switch (r) {
    case Routing::kNone:
      return "none";
    case Routing::kSelfServe:
      return "self_serve";
    case Routing::kPlsAssist:
      return "pls_assist";
    case Routing::kFullSales:
      return "full_sales";
    case Routing::kEnablement:
      return "enablement";
  }
  return "none";
}

std::string_view to_string(EventKind k) {
  switch (k) {
    case EventKind::kUsage:
      return "usage";
    case EventKind::kProvisioning:
      return "provisioning";
    case EventKind::kAdministration:
      return "administration";
    case EventKind::kCommercialIntent:
      return "commercial_intent";
    case EventKind::kCollaboration:
      return "collaboration";
    case EventKind::kSharedAsset:
      return "shared_asset";
  }
  return "usage";
}

std::string_view to_string(FabricCategory c) {
  switch (c) {
    case FabricCategory::kProvisioning:
      return "provisioning";
    case FabricCategory::kAdministration:
      return "administration";
    case FabricCategory::kCommercialIntent:
      return "commercial_intent";
    case FabricCategory::kCollaboration:
      return "collaboration";
    case FabricCategory::kSharedAsset:
      return "shared_asset";
    case FabricCategory::kBreadthExpansion:
      return "breadth_expansion";
  }
  return "provisioning";
}

Role parse_role(std::string_view s) {
  if (s == "admin") return Role::kAdmin;
  if (s == "billing_owner") return Role::kBillingOwner;
  if (s == "champion") return Role::kChampion;
  if (s == "member") return Role::kMember;
  return Role::kUnknown;
}

}  // namespace pqa::rollup
